//! What one side looks like (`Snapshot`) and what both looked like when last in sync (`Base`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::path::RelPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// How exact a modification time is. A Unix `LIST` shows minutes for recent files and days for
/// older ones; MLSD gives seconds; a local disk gives nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Nanos,
    Seconds,
    Minutes,
    Days,
    /// Not observed yet: we set it but have not seen the server list it. Only the size is
    /// compared until a listing confirms the time.
    Unconfirmed,
}

impl Precision {
    fn unit_nanos(self) -> i64 {
        match self {
            Precision::Nanos => 1,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Days => 86_400_000_000_000,
            Precision::Unconfirmed => i64::MAX,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Nanos => "nanos",
            Precision::Seconds => "seconds",
            Precision::Minutes => "minutes",
            Precision::Days => "days",
            Precision::Unconfirmed => "unconfirmed",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "nanos" => Precision::Nanos,
            "seconds" => Precision::Seconds,
            "minutes" => Precision::Minutes,
            "days" => Precision::Days,
            "unconfirmed" => Precision::Unconfirmed,
            _ => return None,
        })
    }
}

/// A modification time in nanoseconds since the Unix epoch, with its precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtime {
    pub nanos: i64,
    pub precision: Precision,
}

impl Mtime {
    pub fn new(nanos: i64, precision: Precision) -> Mtime {
        Mtime { nanos, precision }
    }

    pub fn from_secs(secs: i64) -> Mtime {
        Mtime::new(secs.saturating_mul(1_000_000_000), Precision::Seconds)
    }

    /// Whether two observations can be the same time: compared at the coarser precision of
    /// the two, so a listing that changed shape (minutes -> days) is not a change.
    pub fn same_as(&self, other: &Mtime) -> bool {
        if self.precision == Precision::Unconfirmed || other.precision == Precision::Unconfirmed {
            return true;
        }
        let unit = self.precision.max(other.precision).unit_nanos();
        self.nanos.div_euclid(unit) == other.nanos.div_euclid(unit)
    }

    pub fn secs(&self) -> i64 {
        self.nanos.div_euclid(1_000_000_000)
    }
}

/// One file or directory as one side shows it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    pub mtime: Mtime,
    /// Lower-case hex SHA-256 of the content, when known (always for a local file whose size or
    /// mtime moved since the base; for a remote file only when the server or a download told us).
    pub sha256: Option<String>,
    /// What the side says identifies the file across a rename (`FileId`), when it says.
    pub id: Option<FileId>,
}

/// What identifies a file across a rename on one side, as a hint for pairing a vanished path
/// with a new one: a local file's inode, or a digest of a server's MLSD `unique` fact (which
/// servers derive from the device and inode). Both are reused once a file is gone, so an equal
/// id is never enough alone: size and time (and, locally, the content) must agree too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId(pub std::num::NonZeroU64);

impl FileId {
    /// The id for a number the side gave, if it can be one (an inode is never 0).
    pub fn new(n: u64) -> Option<FileId> {
        std::num::NonZeroU64::new(n).map(FileId)
    }

    /// The id for a server's `unique` fact: the first 8 bytes of its SHA-256 (stable across
    /// releases, unlike the standard library's hasher).
    pub fn of_fact(fact: &str) -> Option<FileId> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(fact.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        FileId::new(u64::from_be_bytes(first))
    }

    /// As stored in SQLite (an INTEGER is signed).
    pub fn to_sql(self) -> i64 {
        self.0.get() as i64
    }

    pub fn from_sql(n: i64) -> Option<FileId> {
        FileId::new(n as u64)
    }
}

impl Entry {
    pub fn dir(mtime: Mtime) -> Entry {
        Entry {
            kind: Kind::Dir,
            size: 0,
            mtime,
            sha256: None,
            id: None,
        }
    }

    pub fn file(size: u64, mtime: Mtime) -> Entry {
        Entry {
            kind: Kind::File,
            size,
            mtime,
            sha256: None,
            id: None,
        }
    }

    pub fn with_sha256(mut self, hex: impl Into<String>) -> Entry {
        self.sha256 = Some(hex.into());
        self
    }

    pub fn with_id(mut self, id: Option<FileId>) -> Entry {
        self.id = id;
        self
    }

    pub fn sig(&self) -> Sig {
        Sig {
            size: self.size,
            mtime: self.mtime,
        }
    }
}

/// What a side said about a path at the last sync: enough to tell whether it moved since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sig {
    pub size: u64,
    pub mtime: Mtime,
}

/// A path as it was when both sides last agreed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseEntry {
    pub kind: Kind,
    pub local: Sig,
    pub remote: Sig,
    pub sha256: Option<String>,
    /// Each side's id of the file when it was in sync (`FileId`), to recognise it moved.
    pub local_id: Option<FileId>,
    pub remote_id: Option<FileId>,
}

impl BaseEntry {
    /// The base both sides agree on, as seen now.
    pub fn of(local: &Entry, remote: &Entry) -> BaseEntry {
        BaseEntry {
            kind: local.kind,
            local: local.sig(),
            remote: remote.sig(),
            sha256: local.sha256.clone().or_else(|| remote.sha256.clone()),
            local_id: local.id,
            remote_id: remote.id,
        }
    }
}

/// A big snapshot or base is collected whole into its map rather than grown by inserts: a
/// B-tree filled in order splits its full nodes in two and leaves them half empty. Over 200,000
/// files that was 160 bytes a base entry, against about 100 for a tree built by a collect (which
/// builds it bottom up, every node full).
pub type Snapshot = BTreeMap<RelPath, Entry>;
pub type Base = BTreeMap<RelPath, BaseEntry>;
