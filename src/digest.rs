//! Content digests computed while bytes stream past: SHA-256 always (it goes into the state
//! store), plus the algorithm a server hash command offers when it is not SHA-256.

use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Sha256,
    Sha1,
    Md5,
}

impl HashAlgo {
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA-256",
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Md5 => "MD5",
        }
    }

    pub fn parse(name: &str) -> Option<HashAlgo> {
        [HashAlgo::Sha256, HashAlgo::Sha1, HashAlgo::Md5]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

pub struct Hashers {
    sha256: Sha256,
    extra: Option<Extra>,
}

enum Extra {
    Sha1(Sha1),
    Md5(md5::Md5),
}

/// The digests of one stream, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub extra: Option<(HashAlgo, String)>,
}

impl Digests {
    pub fn get(&self, algo: HashAlgo) -> Option<&str> {
        match (algo, &self.extra) {
            (HashAlgo::Sha256, _) => Some(&self.sha256),
            (a, Some((b, hex))) if a == *b => Some(hex),
            _ => None,
        }
    }
}

impl Hashers {
    /// SHA-256, plus `also` when a server can only verify with another algorithm.
    pub fn new(also: Option<HashAlgo>) -> Hashers {
        Hashers {
            sha256: Sha256::new(),
            extra: match also {
                Some(HashAlgo::Sha1) => Some(Extra::Sha1(Sha1::new())),
                Some(HashAlgo::Md5) => Some(Extra::Md5(md5::Md5::new())),
                _ => None,
            },
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        match &mut self.extra {
            Some(Extra::Sha1(h)) => h.update(bytes),
            Some(Extra::Md5(h)) => h.update(bytes),
            None => {}
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex::encode(self.sha256.finalize()),
            extra: self.extra.map(|e| match e {
                Extra::Sha1(h) => (HashAlgo::Sha1, hex::encode(h.finalize())),
                Extra::Md5(h) => (HashAlgo::Md5, hex::encode(h.finalize())),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = Hashers::new(Some(HashAlgo::Md5));
        h.update(b"ab");
        h.update(b"c");
        let d = h.finish();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.get(HashAlgo::Md5), Some("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(d.get(HashAlgo::Sha1), None);
    }
}
