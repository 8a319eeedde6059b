//! The local side: scanning a folder, watching it and writing files atomically.

pub mod io;
pub mod scan;
pub mod stream;
pub mod watch;
pub mod write;

/// Our in-flight files: `.<name>.ftps-sync.part`, beside the target, on both sides.
pub const PART_SUFFIX: &str = ".ftps-sync.part";

pub fn part_name(name: &str) -> String {
    format!(".{name}{PART_SUFFIX}")
}

pub fn is_part_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(PART_SUFFIX)
}
