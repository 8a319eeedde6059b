//! The TLS stream under suppaftp: tokio-rustls's, except that waiting to read also sends what
//! a write left buffered.
//!
//! suppaftp writes a command and then waits for its reply, without a flush between. A TLS
//! write that finds the socket not ready for that poll (most often because the task spent its
//! tokio budget, which happens in a pass that reads many files on one task) takes the command
//! into the TLS buffer and reports it written; a read never sends it. The server then waits for
//! a command and we wait for its reply until the timeout. So every read first pushes out what
//! is buffered: the wait that follows is then a wait on the server.
//!
//! And a shutdown that fails is reported aside (`ShutdownError`), not to suppaftp: its
//! `finish` of an upload returns a failed shutdown in place of the server's reply, which it
//! reads and drops. A server that refuses a data connection (ProFTPD's `425` for one that does
//! not resume its session) closes it as the upload's bytes arrive, so the shutdown meets a
//! reset; the reply says why, and the reason is what the caller acts on.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use suppaftp::FtpResult;
use suppaftp::tokio::TokioTlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The last failed shutdown of a connection's streams, for `Ftps` to read after the reply.
pub type ShutdownError = Arc<Mutex<Option<std::io::Error>>>;

#[derive(Debug)]
pub struct SentTls {
    stream: TlsStream<TcpStream>,
    shutdown: ShutdownError,
}

impl SentTls {
    pub fn new(stream: TlsStream<TcpStream>, shutdown: ShutdownError) -> Self {
        Self { stream, shutdown }
    }
}

impl AsyncRead for SentTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stream.get_ref().1.wants_write() {
            // Pending registers this task for the socket's writability: it is woken to try
            // again, here, when the socket takes the bytes.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SentTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.stream).poll_shutdown(cx) {
            Poll::Ready(Err(e)) => {
                if let Ok(mut held) = self.shutdown.lock() {
                    *held = Some(e);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl TokioTlsStream for SentTls {
    type InnerStream = TlsStream<TcpStream>;

    fn tcp_stream(self) -> FtpResult<TcpStream> {
        Ok(self.stream.into_inner().0)
    }

    fn get_ref(&self) -> &TcpStream {
        self.stream.get_ref().0
    }

    fn mut_ref(&mut self) -> &mut Self::InnerStream {
        &mut self.stream
    }
}
