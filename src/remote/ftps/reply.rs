//! Timeouts around suppaftp's awaits, and its errors and replies as ours.

use std::time::Duration;

use suppaftp::{FtpError, FtpResult};

use crate::error::{Error, Result};

/// Runs `fut` under the connection timeout and maps its error.
pub(super) async fn within<T>(
    timeout: Duration,
    command: &'static str,
    path: &str,
    fut: impl std::future::Future<Output = FtpResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(|e| map_error(e, command, path)),
        Err(_) => Err(Error::Timeout {
            command,
            path: path.to_owned(),
            seconds: timeout.as_secs(),
        }),
    }
}

pub(super) fn reply_code(body: &[u8]) -> Option<u16> {
    std::str::from_utf8(body.get(..3)?).ok()?.parse().ok()
}

/// A reply's text, one line per line of the reply.
pub(super) fn reply_lines(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim_end().replace("\r\n", "\n")
}

/// A reply on one line, for messages.
pub(super) fn reply_text(body: &[u8]) -> String {
    reply_lines(body).replace('\n', " | ")
}

pub(super) fn map_error(e: FtpError, command: &'static str, path: &str) -> Error {
    let lost = |message: String| Error::ConnectionLost {
        command,
        path: path.to_owned(),
        message,
    };
    match e {
        FtpError::UnexpectedResponse(r) => Error::Reply {
            command,
            path: path.to_owned(),
            code: reply_code(&r.body),
            reply: reply_text(&r.body),
        },
        FtpError::ConnectionError(io) => lost(io.to_string()),
        FtpError::SecureError(m) => lost(format!("TLS: {m}")),
        FtpError::BadResponse => lost("malformed reply".into()),
        FtpError::InvalidAddress(a) => lost(format!("bad address in reply: {a}")),
        FtpError::DataConnectionAlreadyOpen => lost("data connection already open".into()),
    }
}
