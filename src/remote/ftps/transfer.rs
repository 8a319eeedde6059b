//! Data transfers on one connection: RETR (whole, from an offset, or one range cut short)
//! and STOR/APPE, streamed through channels a chunk at a time.

use suppaftp::FtpError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::reply::{map_error, within};
use super::{CHUNK, Ftps};
use crate::error::{Error, Result};

impl Ftps {
    /// Streams `path` from byte `offset` into `sink`, a chunk at a time. Returns the bytes read.
    pub async fn download(&mut self, path: &str, offset: u64, sink: &mpsc::Sender<Vec<u8>>) -> Result<u64> {
        let r = self.retrieve(path, offset, None, sink).await;
        let r = r.map_err(|e| self.not_resumed(e, "RETR", path));
        self.data_done(r.is_ok(), false);
        r
    }

    /// Streams `len` bytes of `path` from `offset` into `sink` and cuts the transfer there (one
    /// segment of a download split over several connections). Returns the bytes read.
    pub async fn download_range(
        &mut self,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        let r = self.retrieve(path, offset, Some(len), sink).await;
        let r = r.map_err(|e| self.not_resumed(e, "RETR", path));
        self.data_done(r.is_ok(), false);
        r
    }

    /// RETR from `offset`, to the end or for `len` bytes.
    async fn retrieve(
        &mut self,
        path: &str,
        offset: u64,
        len: Option<u64>,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        let t = self.timeout;
        self.ensure_resumable().await?;
        let mut renewed = false;
        let mut data = loop {
            self.start_data_command();
            // The offset is spent by every data command, even one that failed on EPSV.
            if offset > 0 {
                within(t, "REST", path, self.stream.resume_transfer(offset as usize)).await?;
            }
            match within(t, "RETR", path, self.stream.retr_as_stream(path)).await {
                Ok(data) => break data,
                Err(e) => self.go_again_after(e, &mut renewed).await?,
            }
        };
        self.data_opened();
        // One buffer for the reads of the connection, zeroed once; each chunk sent on is a
        // copy of what was read. TLS hands out one record (16 KiB) per read: gather a full
        // buffer before waking the writer thread.
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(CHUNK, 0);
        let read = self.read_all(&mut data, &mut buf, len, path, sink).await;
        self.read_buf = buf;
        let total = read?;
        if len.is_some_and(|len| total == len) {
            // Cut short: the server is still sending. Closing the data connection makes it
            // end the transfer, with a 226, 426 or 451 depending on how far it got; the NOOP
            // reads that reply first (suppaftp keeps it pending), then its own: a connection
            // that answers it is in step again.
            drop(data);
            if let Err(e) = self.noop().await {
                // ProFTPD's mod_tls ends the whole session when the cut meets it inside a TLS
                // write ("unexpected OpenSSL error, disconnecting"), now and then. The range's
                // bytes all came before the cut: only this connection is lost.
                tracing::debug!(path, "the server ended the session after a range was cut: {e}");
                self.broken = true;
            }
            return Ok(total);
        }
        within(t, "RETR", path, data.finish()).await?;
        Ok(total)
    }

    /// Reads a data connection into `sink`, a `buf`ful at a time, to its end or `limit` bytes;
    /// the bytes read.
    async fn read_all<R: tokio::io::AsyncRead + Unpin>(
        &self,
        data: &mut R,
        buf: &mut [u8],
        limit: Option<u64>,
        path: &str,
        sink: &mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        let t = self.timeout;
        let mut total = 0u64;
        let mut eof = false;
        while !eof {
            let room = limit.map_or(buf.len() as u64, |l| (l - total).min(buf.len() as u64)) as usize;
            if room == 0 {
                break;
            }
            let buf = &mut buf[..room];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(t, data.read(&mut buf[n..])).await {
                    Err(_) => {
                        return Err(Error::Timeout {
                            command: "RETR",
                            path: path.to_owned(),
                            seconds: t.as_secs(),
                        });
                    }
                    Ok(Err(e)) => return Err(map_error(FtpError::ConnectionError(e), "RETR", path)),
                    Ok(Ok(0)) => {
                        eof = true;
                        break;
                    }
                    Ok(Ok(k)) => n += k,
                }
            }
            if n == 0 {
                break;
            }
            if let Some(l) = &self.limiter {
                l.take(n).await;
            }
            if sink.send(buf[..n].to_vec()).await.is_err() {
                return Err(Error::Local {
                    op: "write",
                    path: path.into(),
                    source: std::io::Error::other("the local writer stopped"),
                });
            }
            total += n as u64;
        }
        Ok(total)
    }

    /// Streams the chunks of `source` to `path`. Returns the bytes sent. With `append`, the
    /// bytes go to the end of the existing file (APPE), to resume an upload.
    pub async fn upload(
        &mut self,
        path: &str,
        source: &mut mpsc::Receiver<Vec<u8>>,
        append: bool,
    ) -> Result<u64> {
        let how = if append { Store::Append } else { Store::Replace };
        let r = self.store(path, source, how).await;
        let r = r.map_err(|e| self.not_resumed(e, "STOR", path));
        self.data_done(r.is_ok(), true);
        r
    }

    /// Streams the chunks of `source` into `path` from byte `offset` on (REST, then STOR):
    /// what a server does with the bytes before and after it varies (`check` tries it).
    pub async fn upload_at(
        &mut self,
        path: &str,
        offset: u64,
        source: &mut mpsc::Receiver<Vec<u8>>,
    ) -> Result<u64> {
        let r = self.store(path, source, Store::At(offset)).await;
        let r = r.map_err(|e| self.not_resumed(e, "STOR", path));
        self.data_done(r.is_ok(), true);
        r
    }

    async fn store(&mut self, path: &str, source: &mut mpsc::Receiver<Vec<u8>>, how: Store) -> Result<u64> {
        let t = self.timeout;
        self.ensure_resumable().await?;
        let mut renewed = false;
        let mut data = loop {
            self.start_data_command();
            let opened = match how {
                Store::Append => within(t, "APPE", path, self.stream.append_with_stream(path)).await,
                Store::Replace => within(t, "STOR", path, self.stream.put_with_stream(path)).await,
                Store::At(offset) => {
                    // The offset is spent by every data command, even one that failed on EPSV.
                    within(t, "REST", path, self.stream.resume_transfer(offset as usize)).await?;
                    within(t, "STOR", path, self.stream.put_with_stream(path)).await
                }
            };
            match opened {
                Ok(data) => break data,
                Err(e) => self.go_again_after(e, &mut renewed).await?,
            }
        };
        self.data_opened();
        let mut total = 0u64;
        while let Some(chunk) = source.recv().await {
            if let Some(l) = &self.limiter {
                l.take(chunk.len()).await;
            }
            match tokio::time::timeout(t, data.write_all(&chunk)).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        command: "STOR",
                        path: path.to_owned(),
                        seconds: t.as_secs(),
                    });
                }
                Ok(Err(e)) => return Err(self.why_the_upload_broke(data, e, path).await),
                Ok(Ok(())) => {}
            }
            total += chunk.len() as u64;
        }
        // finish() sends close_notify, drains to EOF and reads the 226 (vsftpd TLS 1.3 trap).
        within(t, "STOR", path, data.finish()).await?;
        // A close_notify that did not go: the server cannot have seen the end of the file.
        if let Some(e) = self.shutdown.lock().ok().and_then(|mut held| held.take()) {
            return Err(map_error(FtpError::ConnectionError(e), "STOR", path));
        }
        Ok(total)
    }

    /// A data connection that broke while an upload wrote to it: the server's reply on the
    /// control channel says why, where it sent one (ProFTPD refuses a data connection that does
    /// not resume with `425` and closes it, which a write can meet before the reply is read;
    /// a full disk is a `452`), and is the error. A reply of success leaves the write's error.
    /// A server that says nothing within a few seconds leaves the connection out of step.
    async fn why_the_upload_broke(&mut self, data: Upload, e: std::io::Error, path: &str) -> Error {
        let wait = self.timeout.min(std::time::Duration::from_secs(5));
        match tokio::time::timeout(wait, data.finish()).await {
            Ok(Err(why @ FtpError::UnexpectedResponse(_))) => map_error(why, "STOR", path),
            Ok(_) => map_error(FtpError::ConnectionError(e), "STOR", path),
            Err(_) => {
                self.broken = true;
                map_error(FtpError::ConnectionError(e), "STOR", path)
            }
        }
    }
}

type Upload = suppaftp::tokio::TransferStream<super::sent::SentTls>;

/// How STOR treats what the server already holds at the path.
#[derive(Clone, Copy)]
enum Store {
    Replace,
    Append,
    At(u64),
}
