//! What the agent learned about the server (`remote::learned`), between the state dir and the
//! connector: read before the first login, kept when something new is learned. The connector
//! is made above the engine (`app`, `daemon`), which names FTPS; the engine does not.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, Server};
use crate::error::Result;
use crate::remote::learned::{Identity, Keep, Learned, TlsLearned};
use crate::state::servers::{LearnedRow, ServerStore};

const TLS: &str = "tls";

/// What earlier runs learned of the server, and a way to keep what this run learns: what a
/// connector is made with (`FtpsConnector::remembering`).
pub fn memory(config: &Config) -> (Option<Learned>, Option<Keep>) {
    (
        remembered(config),
        Some(keeper(&config.state_dir, &config.server)),
    )
}

/// What earlier runs learned of the server, whether it still holds or not (it is checked
/// against the server when it answers); nothing if nothing was learned. A store that cannot be
/// read costs only what it held: a warning, not an error.
pub fn remembered(config: &Config) -> Option<Learned> {
    match read(config) {
        Ok(learned) => learned,
        Err(e) => {
            tracing::warn!("what was learned about the server cannot be read, so it is learned again: {e}");
            None
        }
    }
}

fn read(config: &Config) -> Result<Option<Learned>> {
    let server = &config.server;
    let Some(store) = ServerStore::open(&config.state_dir, false)? else {
        return Ok(None);
    };
    let row = store.get(&server.host, server.port, TLS)?;
    Ok(row.and_then(|r| {
        Some(Learned {
            tls: TlsLearned::parse(&r.value)?,
            identity: Identity {
                fingerprint: r.fingerprint,
                greeting: r.greeting,
            },
            why: r.why,
            at: r.learned_at,
        })
    }))
}

/// Keeps what is learned in the state dir. A store that cannot be written costs only the
/// learning of the next run, so it is a warning, not an error.
fn keeper(state_dir: &Path, server: &Server) -> Keep {
    let (state_dir, host, port) = (state_dir.to_owned(), server.host.clone(), server.port);
    Arc::new(move |l: Option<&Learned>| {
        let row = l.map(|l| LearnedRow {
            fact: TLS.into(),
            value: l.tls.as_str().into(),
            why: l.why.clone(),
            fingerprint: l.identity.fingerprint.clone(),
            greeting: l.identity.greeting.clone(),
            learned_at: l.at,
        });
        let kept = ServerStore::open(&state_dir, true).and_then(|store| match (store, &row) {
            (Some(s), Some(row)) => s.put(&host, port, row),
            (Some(s), None) => s.delete(&host, port, TLS),
            (None, _) => Ok(()),
        });
        if let Err(e) = kept {
            tracing::warn!("what was learned about {host}:{port} could not be kept: {e}");
        }
    })
}
