//! What a listing may make the client hold, whatever a server sends (docs/design.md,
//! "Bounds"). A listing that never ends never goes idle, so no timeout would cut it: these
//! bounds do.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::time::Instant;

use super::listing::Listed;

/// One line of a listing: an MLSD line with every fact a server gives and the longest name
/// is a few hundred bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// One name in a listing: file systems hold 255 bytes (ext4) or 255 UTF-16 units (NTFS, at most
/// 765 bytes of UTF-8).
pub const MAX_NAME: usize = 1024;
/// The lines of one folder's listing: a real folder may hold a million files.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The bytes of the names of one folder's listing, together: a million names of 128 bytes.
pub const MAX_NAMES: usize = 128 * 1024 * 1024;

/// Why a listing stopped before its end.
#[derive(Debug)]
pub enum ListingError {
    Io(std::io::Error),
    /// The time the whole listing may take ran out.
    Deadline,
    /// Past a bound: what was past it, and the bound in words.
    Bound {
        what: String,
        bound: String,
    },
}

/// The bounds one listing is read within: the constants above, smaller in unit tests.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub line: usize,
    pub name: usize,
    pub entries: usize,
    pub names: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            line: MAX_LINE,
            name: MAX_NAME,
            entries: MAX_ENTRIES,
            names: MAX_NAMES,
        }
    }
}

/// Reads a listing's lines, each parsed as it arrives, within its bounds.
pub struct BoundedLines<R> {
    reader: R,
    bounds: Bounds,
    line: Vec<u8>,
    lines: usize,
    names: usize,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    pub fn new(reader: R, bounds: Bounds) -> BoundedLines<R> {
        BoundedLines {
            reader,
            bounds,
            line: Vec::new(),
            lines: 0,
            names: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Reads to the end, pushing what `parse` makes of each non-empty line onto `out`.
    pub async fn read_all(
        &mut self,
        deadline: Instant,
        out: &mut Vec<Listed>,
        parse: &(dyn Fn(&str) -> Option<Listed> + Sync),
    ) -> Result<(), ListingError> {
        loop {
            let buf = match tokio::time::timeout_at(deadline, self.reader.fill_buf()).await {
                Err(_) => return Err(ListingError::Deadline),
                Ok(Err(e)) => return Err(ListingError::Io(e)),
                Ok(Ok(buf)) => buf,
            };
            if buf.is_empty() {
                return self.end_line(out, parse);
            }
            let (taken, ended) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            // A line may end in CR LF beyond its bound; one byte more than that is past it.
            let max = self.bounds.line + 2;
            let room = max + 1 - self.line.len();
            self.line.extend_from_slice(&buf[..taken.min(room)]);
            self.reader.consume(taken);
            let over = if ended {
                self.line.len() > max
            } else {
                self.line.len() > max - 1
            };
            if over {
                return Err(self.line_too_long());
            }
            if ended {
                self.end_line(out, parse)?;
            }
        }
    }

    fn line_too_long(&self) -> ListingError {
        ListingError::Bound {
            what: format!("a listing line longer than {} bytes", self.bounds.line),
            bound: format!("{} bytes a line", self.bounds.line),
        }
    }

    /// The line read so far, parsed and counted.
    fn end_line(
        &mut self,
        out: &mut Vec<Listed>,
        parse: &(dyn Fn(&str) -> Option<Listed> + Sync),
    ) -> Result<(), ListingError> {
        let bytes = std::mem::take(&mut self.line);
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.is_empty() {
            return Ok(());
        }
        let b = self.bounds;
        if bytes.len() > b.line {
            return Err(self.line_too_long());
        }
        self.lines += 1;
        if self.lines > b.entries {
            return Err(ListingError::Bound {
                what: format!("a folder listing of more than {} lines", b.entries),
                bound: format!("{} entries a folder", b.entries),
            });
        }
        let text = String::from_utf8_lossy(bytes);
        match parse(&text) {
            Some(listed) => {
                if listed.name.len() > b.name {
                    return Err(ListingError::Bound {
                        what: format!("a name of {} bytes", listed.name.len()),
                        bound: format!("{} bytes a name", b.name),
                    });
                }
                self.names += listed.name.len();
                if self.names > b.names {
                    return Err(ListingError::Bound {
                        what: format!(
                            "a folder listing whose names add up to more than {} bytes",
                            b.names
                        ),
                        bound: format!("{} bytes of names a folder", b.names),
                    });
                }
                out.push(listed);
            }
            None => tracing::debug!(line = %text, "listing line skipped"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::listing::parse_mlsd;

    const SMALL: Bounds = Bounds {
        line: 64,
        name: 16,
        entries: 5,
        names: 40,
    };

    async fn read(input: &[u8], bounds: Bounds) -> Result<Vec<Listed>, ListingError> {
        let mut lines = BoundedLines::new(input, bounds);
        let mut out = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        lines
            .read_all(deadline, &mut out, &parse_mlsd)
            .await
            .map(|()| out)
    }

    fn bound(r: Result<Vec<Listed>, ListingError>) -> String {
        match r {
            Err(ListingError::Bound { bound, .. }) => bound,
            other => panic!("expected a bound, got {other:?}"),
        }
    }

    fn file(name: &str) -> String {
        format!("type=file;size=1; {name}\r\n")
    }

    #[tokio::test]
    async fn reads_lines_of_any_ending_and_a_last_one_without() {
        let got = read(
            b"type=file;size=1; a\r\n\r\ntype=dir; b\ntype=file;size=2; c",
            Bounds::default(),
        )
        .await;
        let names: Vec<String> = got.expect("read").into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_line_past_its_bound_ends_the_listing_even_one_that_never_ends() {
        let exact = format!("type=file;size=1; {}\r\n", "x".repeat(64 - 18));
        let wide = Bounds {
            name: 64,
            names: 64,
            ..SMALL
        };
        assert_eq!(read(exact.as_bytes(), wide).await.expect("at the bound").len(), 1);
        let over = format!("type=file;size=1; {}\r\n", "x".repeat(64 - 17));
        assert!(bound(read(over.as_bytes(), wide).await).contains("a line"));
        let endless = "x".repeat(10_000);
        assert!(bound(read(endless.as_bytes(), wide).await).contains("a line"));
    }

    #[tokio::test]
    async fn a_name_past_its_bound_ends_the_listing() {
        assert_eq!(
            read(file(&"n".repeat(16)).as_bytes(), SMALL)
                .await
                .expect("at the bound")
                .len(),
            1
        );
        assert!(bound(read(file(&"n".repeat(17)).as_bytes(), SMALL).await).contains("a name"));
    }

    #[tokio::test]
    async fn lines_past_the_entries_bound_end_the_listing_even_unparsed() {
        assert!(
            read("?\n".repeat(5).as_bytes(), SMALL)
                .await
                .expect("at the bound")
                .is_empty()
        );
        assert!(bound(read("?\n".repeat(6).as_bytes(), SMALL).await).contains("entries a folder"));
    }

    #[tokio::test]
    async fn names_past_their_total_bound_end_the_listing() {
        let names = |n: usize| {
            (0..n)
                .map(|i| file(&format!("{i}{}", "m".repeat(9))))
                .collect::<String>()
        };
        assert_eq!(
            read(names(4).as_bytes(), SMALL)
                .await
                .expect("40 bytes of names")
                .len(),
            4
        );
        assert!(
            bound(
                read(
                    names(5).as_bytes(),
                    Bounds {
                        entries: 100,
                        ..SMALL
                    }
                )
                .await
            )
            .contains("of names")
        );
    }

    #[test]
    fn the_real_bounds_hold_a_million_ordinary_names() {
        let b = Bounds::default();
        assert!(b.entries >= 1_000_000 && b.names >= 1_000_000 * 100 && b.name >= 765 && b.line > b.name);
    }
}
