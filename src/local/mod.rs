//! The local side: scanning a folder, watching it, writing files atomically, and the disk seam
//! (`disk`) for the changes that must survive a power cut.

pub mod disk;
pub mod io;
pub mod precision;
pub mod scan;
pub mod stream;
pub mod watch;
pub mod write;

/// Our in-flight files: `.<name>.ftps-sync.part`, beside the target, on both sides.
pub const PART_SUFFIX: &str = ".ftps-sync.part";

pub fn part_name(name: &str) -> String {
    format!(".{name}{PART_SUFFIX}")
}

/// The name a part file stands in for: `report.txt` for `.report.txt.ftps-sync.part`.
pub fn part_target(name: &str) -> Option<&str> {
    name.strip_prefix('.')?
        .strip_suffix(PART_SUFFIX)
        .filter(|target| !target.is_empty())
}

pub fn is_part_name(name: &str) -> bool {
    part_target(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_name_names_its_target() {
        assert_eq!(part_target(&part_name("a.txt")), Some("a.txt"));
        assert_eq!(part_target(".a.txt"), None);
        // The suffix alone (a name a server can send) is nobody's part file.
        assert_eq!(part_target(PART_SUFFIX), None);
        assert!(!is_part_name(PART_SUFFIX));
    }
}
