//! The server's FEAT reply, and what ftps-sync uses of it: how to list, set times and hash.
//! Pure: tested on captured replies.

use crate::digest::HashAlgo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingMode {
    Mlsd,
    List,
}

/// How the server lets us set a file's modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtimeSupport {
    Mfmt,
    /// vsftpd's two-argument `MDTM YYYYMMDDhhmmss path`: tried once, dropped if refused.
    MdtmWrite,
    None,
}

/// How the server computes a hash of a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCommand {
    /// RFC draft `HASH` (after `OPTS HASH <algo>`).
    Hash(HashAlgo),
    /// `XSHA256`, `XSHA1`, `XMD5`.
    X(HashAlgo),
}

impl HashCommand {
    pub fn algo(self) -> HashAlgo {
        match self {
            HashCommand::Hash(a) | HashCommand::X(a) => a,
        }
    }
}

/// The server's FEAT reply: one feature per line, e.g. `MLST type*;size*;modify*;`.
#[derive(Debug, Clone, Default)]
pub struct Features {
    pub lines: Vec<String>,
}

impl Features {
    pub fn parse(reply: &str) -> Features {
        let lines = reply
            .lines()
            .filter(|l| l.starts_with(' ')) // RFC 2389: feature lines start with a space
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        Features { lines }
    }

    /// The arguments of feature `name`, if offered (`Some("")` when it has none).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            let (head, rest) = l.split_once(' ').unwrap_or((l, ""));
            head.eq_ignore_ascii_case(name).then_some(rest)
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// MLSD when the server has MLST (RFC 3659, exact UTC times), else LIST.
    pub fn listing(&self) -> ListingMode {
        if self.has("MLST") {
            ListingMode::Mlsd
        } else {
            ListingMode::List
        }
    }

    /// The `OPTS MLST` that turns on the facts ftps-sync reads (type, size, modify, unique),
    /// when the server offers `unique` but does not send it by default (pyftpdlib): it pairs a
    /// file renamed on the server with its old name. `None` when nothing needs turning on.
    pub fn mlst_opts(&self) -> Option<String> {
        let facts: Vec<&str> = self.get("MLST")?.split(';').filter(|f| !f.is_empty()).collect();
        let unique = facts
            .iter()
            .find(|f| f.trim_end_matches('*').eq_ignore_ascii_case("unique"))?;
        if unique.ends_with('*') {
            return None;
        }
        let wanted: Vec<&str> = facts
            .iter()
            .map(|f| f.trim_end_matches('*'))
            .filter(|f| {
                ["type", "size", "modify", "unique"]
                    .iter()
                    .any(|w| f.eq_ignore_ascii_case(w))
            })
            .collect();
        Some(format!("OPTS MLST {};", wanted.join(";")))
    }

    /// MFMT where offered; else vsftpd's two-argument MDTM is tried.
    pub fn mtime(&self) -> MtimeSupport {
        if self.has("MFMT") {
            MtimeSupport::Mfmt
        } else if self.has("MDTM") {
            MtimeSupport::MdtmWrite
        } else {
            MtimeSupport::None
        }
    }

    /// The strongest hash the server offers: SHA-256, then SHA-1, then MD5; `HASH` before
    /// the `X…` commands at the same strength.
    pub fn hash(&self) -> Option<HashCommand> {
        let hash_args = self.get("HASH").map(|a| a.to_ascii_uppercase());
        let x = |name: &str| self.has(name);
        match hash_args {
            Some(a) if a.contains("SHA-256") => Some(HashCommand::Hash(HashAlgo::Sha256)),
            _ if x("XSHA256") => Some(HashCommand::X(HashAlgo::Sha256)),
            Some(a) if a.contains("SHA-1") => Some(HashCommand::Hash(HashAlgo::Sha1)),
            _ if x("XSHA1") => Some(HashCommand::X(HashAlgo::Sha1)),
            Some(a) if a.contains("MD5") => Some(HashCommand::Hash(HashAlgo::Md5)),
            _ if x("XMD5") => Some(HashCommand::X(HashAlgo::Md5)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured here: ProFTPD 1.3.8 with mod_digest, and vsftpd 3.0.3.
    const PROFTPD: &str = "211-Features:\r\n AUTH TLS\r\n CCC\r\n EPSV\r\n HASH SHA-1*;SHA-256;SHA-512;MD5\r\n \
        MDTM\r\n MFMT\r\n MLST modify*;perm*;size*;type*;unique*;\r\n REST STREAM\r\n SIZE\r\n \
        UTF8\r\n XSHA256\r\n211 End";
    const VSFTPD: &str = "211-Features:\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n PBSZ\r\n \
        PROT\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End";
    // The feature lines captured from Pure-FTPd 1.0.50 and pyftpdlib 2.2.0 (the interop servers),
    // between first and last lines as those servers word them.
    const PURE_FTPD: &str = "211-Extensions supported:\r\n UTF8\r\n EPRT\r\n IDLE\r\n MDTM\r\n SIZE\r\n \
        MFMT\r\n REST STREAM\r\n MLST type*;size*;sizd*;modify*;UNIX.mode*;UNIX.uid*;UNIX.gid*;unique*;\r\n \
        MLSD\r\n PRET\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n TVFS\r\n ESTA\r\n PASV\r\n EPSV\r\n ESTP\r\n211 End.";
    const PYFTPDLIB: &str = "211-Features supported:\r\n AUTH SSL\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n \
        MFMT\r\n MLST type*;perm*;size*;modify*;unique*;unix.mode;unix.uid;unix.gid;\r\n PBSZ\r\n PROT\r\n \
        REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End FEAT.";

    #[test]
    fn proftpd_lists_with_mlsd_sets_times_with_mfmt_and_hashes_with_sha256() {
        let f = Features::parse(PROFTPD);
        assert_eq!(f.listing(), ListingMode::Mlsd);
        assert_eq!(f.mtime(), MtimeSupport::Mfmt);
        assert_eq!(f.hash(), Some(HashCommand::Hash(HashAlgo::Sha256)));
        assert_eq!(f.get("REST"), Some("STREAM"));
    }

    #[test]
    fn unique_is_turned_on_only_where_the_server_leaves_it_off() {
        for captured in [PROFTPD, VSFTPD, PURE_FTPD, PYFTPDLIB] {
            assert_eq!(Features::parse(captured).mlst_opts(), None);
        }
        let off =
            Features::parse("211-Features:\r\n MLST type*;perm*;size*;modify*;unique;unix.mode;\r\n211 End");
        assert_eq!(
            off.mlst_opts().as_deref(),
            Some("OPTS MLST type;size;modify;unique;")
        );
    }

    #[test]
    fn vsftpd_lists_with_list_and_has_no_hash() {
        let f = Features::parse(VSFTPD);
        assert_eq!(f.listing(), ListingMode::List);
        assert_eq!(f.mtime(), MtimeSupport::MdtmWrite);
        assert_eq!(f.hash(), None);
        assert!(f.has("epsv"), "names are case-insensitive");
    }

    #[test]
    fn pure_ftpd_and_pyftpdlib_list_with_mlsd_set_times_with_mfmt_and_have_no_hash() {
        for (name, reply) in [("Pure-FTPd", PURE_FTPD), ("pyftpdlib", PYFTPDLIB)] {
            let f = Features::parse(reply);
            assert_eq!(f.listing(), ListingMode::Mlsd, "{name}");
            assert_eq!(f.mtime(), MtimeSupport::Mfmt, "{name}");
            assert_eq!(f.hash(), None, "{name}");
            assert_eq!(f.get("REST"), Some("STREAM"), "{name}");
            assert!(f.has("EPSV"), "{name}");
        }
    }

    #[test]
    fn an_x_command_is_taken_when_hash_lacks_the_algorithm() {
        let f = Features::parse("211-x\r\n HASH MD5\r\n XSHA1\r\n211 End");
        assert_eq!(f.hash(), Some(HashCommand::X(HashAlgo::Sha1)));
    }
}
