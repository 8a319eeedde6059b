//! Real FTPS servers started by the tests: vsftpd (explicit and implicit), ProFTPD, Pure-FTPd
//! and pyftpdlib, on loopback ports chosen here, each with a throwaway certificate and a temp
//! root. Nothing is installed here: `.ci/install-servers` unpacks the daemons under
//! `$FTPS_SYNC_SERVERS` (default `/opt/ftps-sync-servers`) and installs pyftpdlib.
//!
//! A server that is not installed (or needs root we do not have) makes its test print
//! `SKIPPED <server>: <why>` and pass; with `FTPS_SYNC_INTEROP=require` (set by `.ci/run`) it
//! fails instead.

mod bounds;
mod check;
mod crash_matrix;
mod epsv;
mod full_disk;
mod hostile;
mod moves;
mod racy;
mod ranges;
mod resumption;
pub mod servers;
mod suite;
mod tls_fallback;
mod tls_policy;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Where `.ci/install-servers` unpacked the daemons.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("FTPS_SYNC_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/ftps-sync-servers"))
}

/// Reports a server that cannot run here (`support::skip`), counted for the summary line.
pub fn skip(what: &str, why: &str) {
    summary::skipped(what, why);
    crate::support::skip(what, why);
}

/// `interop: N run, M SKIPPED (why)`, printed once when the test binary ends: how many real
/// servers the run started, and which ones it could not.
mod summary {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, Once};

    static RAN: AtomicUsize = AtomicUsize::new(0);
    static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static AT_EXIT: Once = Once::new();

    pub fn ran() {
        RAN.fetch_add(1, Ordering::SeqCst);
        print_at_exit();
    }

    pub fn skipped(what: &str, why: &str) {
        if let Ok(mut s) = SKIPPED.lock() {
            s.push(format!("{what}: {why}"));
        }
        print_at_exit();
    }

    fn print_at_exit() {
        // SAFETY: `print` is an `extern "C" fn()` that touches only statics.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(print);
        });
    }

    extern "C" fn print() {
        use std::io::Write as _;
        let ran = RAN.load(Ordering::SeqCst);
        let skipped = SKIPPED.lock().map(|s| s.clone()).unwrap_or_default();
        let why = if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.join("; "))
        };
        let _ = writeln!(
            std::io::stderr(),
            "interop: {ran} run, {} SKIPPED{why}",
            skipped.len()
        );
    }
}

/// Counts a real server started (for the summary line).
pub fn ran() {
    summary::ran();
}

/// Prints a result line past the capture (for the compatibility table).
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "INTEROP {line}");
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// uid and gid of a local account.
pub fn account(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, name]).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().parse().ok())?
    };
    Some((id("-u")?, id("-g")?))
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A passive port range of its own for each server, below the ephemeral range.
pub fn passive_range() -> (u16, u16) {
    passive_range_of(100)
}

/// A passive port range of `width` ports. ProFTPD takes a wide one: it picks a random port of
/// its range for each data connection and answers `425 ... Address already in use` when it
/// cannot listen there, so the odds of that refusal fall as the range widens.
pub fn passive_range_of(width: u16) -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(20000);
    let lo = NEXT.fetch_add(width, Ordering::SeqCst);
    (lo, lo + width - 1)
}

/// A listener on 127.0.0.2 for a server that masquerades its PASV replies as that address while
/// its data port is on 127.0.0.1: nothing may connect to it. Also the pyftpdlib arguments for
/// such a server. `None` (reported as a skip) when 127.0.0.2 cannot be bound here.
pub fn pasv_trap(first_port: u16) -> Option<(std::net::TcpListener, Vec<String>)> {
    let port = first_port + (std::process::id() % 40) as u16;
    let trap = match std::net::TcpListener::bind(("127.0.0.2", port)) {
        Ok(t) => t,
        Err(e) => {
            skip("pasv-trap", &format!("cannot bind 127.0.0.2:{port}: {e}"));
            return None;
        }
    };
    trap.set_nonblocking(true).expect("nonblocking");
    let args = vec![
        "--masquerade".to_owned(),
        "127.0.0.2".to_owned(),
        "--passive-ports".to_owned(),
        format!("{port}-{port}"),
    ];
    Some((trap, args))
}

/// A server process, killed with its process group when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
        }
    }

    /// Waits until `port` accepts connections; panics with the server's log if it dies.
    pub fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!(
            "{} did not listen on {port}:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole process group (daemons fork per session). `--` matters: procps kill reads
        // `-KILL -1234` as kill(-1) when the group id starts with 1, which kills everything.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
