//! The store's schema, as the migrations that make it: see `State::migrate`.

/// Migration `i` takes a store from version `i` to `i + 1`; the last one reached is the version
/// this binary writes. Append only: never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema. Stores of the first release (c9f62f6 and before) have these
    // tables already at version 0, hence IF NOT EXISTS.
    "
CREATE TABLE IF NOT EXISTS entries (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    local_size INTEGER NOT NULL,
    local_mtime INTEGER NOT NULL,
    local_precision TEXT NOT NULL,
    remote_size INTEGER NOT NULL,
    remote_mtime INTEGER NOT NULL,
    remote_precision TEXT NOT NULL,
    sha256 TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partials (
    path TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    precision TEXT NOT NULL
);
",
    // 1 -> 2: the intent journal (docs/design.md, invariant 2). A row is written, durably, before a
    // transfer's result becomes visible under its real name, and removed in the transaction
    // that records the result; the next pass settles what is left.
    "
CREATE TABLE intents (
    path TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    kind TEXT NOT NULL,
    local_size INTEGER NOT NULL,
    local_mtime INTEGER NOT NULL,
    local_precision TEXT NOT NULL,
    remote_size INTEGER NOT NULL,
    remote_mtime INTEGER NOT NULL,
    remote_precision TEXT NOT NULL,
    sha256 TEXT,
    server_digest TEXT
);
",
    // 2 -> 3: which local folder a download's part file was in (settle::local_done).
    "ALTER TABLE intents ADD COLUMN folder TEXT;",
    // 3 -> 4: moves. Each side's id of a file in sync (`FileId`: the local inode, the server's
    // MLSD `unique`), to pair a vanished path with a new one; and a move's source in its intent.
    // Rows from before have no ids: their moves are recognised by content alone.
    "
ALTER TABLE entries ADD COLUMN local_id INTEGER;
ALTER TABLE entries ADD COLUMN remote_id INTEGER;
ALTER TABLE intents ADD COLUMN local_id INTEGER;
ALTER TABLE intents ADD COLUMN remote_id INTEGER;
ALTER TABLE intents ADD COLUMN source TEXT;
",
];

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();
