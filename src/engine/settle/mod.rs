//! Crash recovery (docs/design.md, "The journal"): the open intents, on disk before their steps
//! (`durable`), and settling those a killed pass (or a lost connection) left open by looking at
//! both sides.

mod durable;
mod found;
mod intents;
mod recover;

pub(crate) use durable::GroupSync;
pub(crate) use found::{Expected, Found, expected_at, holds, local_subtree, remote_subtree};
pub(crate) use intents::Intents;
pub(crate) use recover::{Settled, apply, record, settle, settle_one};
