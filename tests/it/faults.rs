//! A fault-injecting TCP proxy between ftps-sync and a real FTPS server: connections are cut at
//! a random byte offset, reset, or stalled. The proxy sits on 127.0.0.2 in front of the control
//! port and every passive port, so data connections (which go to the control peer's address)
//! pass through it too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::{Harness, part_files, pass, put, tree};

#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    cuts: AtomicUsize,
    resets: AtomicUsize,
    stalls: AtomicUsize,
}

struct Proxy {
    stats: Arc<Stats>,
    _tasks: JoinSet<()>,
}

/// A small deterministic generator, so a failing run can be replayed.
fn next_random(state: &AtomicU64) -> u64 {
    let mut x = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    Cut(u64),
    Reset(u64),
    Stall(u64),
}

async fn start(
    listen_ip: &str,
    forwards: Vec<(u16, SocketAddr)>,
    rate_percent: u64,
    seed: u64,
) -> std::io::Result<Proxy> {
    let stats = Arc::new(Stats::default());
    let rng = Arc::new(AtomicU64::new(seed));
    let mut tasks = JoinSet::new();
    for (port, target) in forwards {
        let listener = TcpListener::bind((listen_ip, port)).await?;
        let (stats, rng) = (stats.clone(), rng.clone());
        tasks.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                stats.connections.fetch_add(1, Ordering::SeqCst);
                let roll = next_random(&rng);
                let at = next_random(&rng) % 6_000; // within a TLS handshake or a small file
                let fault = if roll % 100 >= rate_percent {
                    Fault::None
                } else {
                    match roll / 100 % 3 {
                        0 => Fault::Cut(at),
                        1 => Fault::Reset(at),
                        _ => Fault::Stall(at),
                    }
                };
                let stats = stats.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pump(client, server, fault, &stats).await;
                    }
                });
            }
        });
    }
    Ok(Proxy { stats, _tasks: tasks })
}

/// Forwards both ways until either side closes, or the fault fires after `at` bytes in total.
async fn pump(client: TcpStream, server: TcpStream, fault: Fault, stats: &Stats) {
    let limit = match fault {
        Fault::None => u64::MAX,
        Fault::Cut(n) | Fault::Reset(n) | Fault::Stall(n) => n,
    };
    let moved = AtomicU64::new(0);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let copy = async |from: &mut tokio::net::tcp::OwnedReadHalf, to: &mut tokio::net::tcp::OwnedWriteHalf| {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let before = moved.fetch_add(n as u64, Ordering::SeqCst);
            let take = if before + n as u64 > limit {
                (limit.saturating_sub(before)) as usize
            } else {
                n
            };
            if to.write_all(&buf[..take]).await.is_err() {
                return;
            }
            if take < n {
                return; // the fault fires here
            }
        }
    };
    tokio::select! {
        _ = copy(&mut cr, &mut sw) => {}
        _ = copy(&mut sr, &mut cw) => {}
    }
    // Count a fault only if it fired before the connection ended by itself.
    let fault = if moved.load(Ordering::SeqCst) >= limit {
        fault
    } else {
        Fault::None
    };
    match fault {
        Fault::None => {}
        Fault::Cut(_) => {
            stats.cuts.fetch_add(1, Ordering::SeqCst);
        }
        Fault::Reset(_) => {
            stats.resets.fetch_add(1, Ordering::SeqCst);
            if let Ok(client) = cr.reunite(cw) {
                // A zero linger does not block on drop: it makes the close an RST.
                #[allow(deprecated)]
                let _ = client.set_linger(Some(Duration::ZERO));
            }
        }
        Fault::Stall(_) => {
            stats.stalls.fetch_add(1, Ordering::SeqCst);
            // Hold both sockets open and silent: the client's timeout must notice.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_through_a_faulty_network_converges() {
    let (lo, _) = crate::interop::passive_range();
    let h = Harness::with_tls(ftps_sync::demo::ServerTls {
        passive_ports: Some((lo, lo + 19)),
        ..Default::default()
    })
    .await;
    let control = crate::interop::free_port();
    let mut forwards = vec![(control, h.server.addr)];
    forwards.extend((lo..=lo + 19).map(|p| (p, SocketAddr::from(([127, 0, 0, 1], p)))));
    let proxy = match start("127.0.0.2", forwards, 5, 0x5EED).await {
        Ok(p) => p,
        Err(e) => {
            crate::interop::skip("fault proxy", &format!("cannot listen on 127.0.0.2: {e}"));
            return;
        }
    };
    for i in 0..250 {
        put(
            &h.local,
            &format!("up/d{}/f{i}.bin", i % 10),
            vec![i as u8; 1000 + i * 37],
        );
        put(
            &h.remote,
            &format!("down/d{}/g{i}.bin", i % 10),
            vec![(i * 7) as u8; 2000 + i * 13],
        );
    }
    let config = h
        .config_yaml()
        .host("127.0.0.2")
        .port(control)
        .timeout("2s")
        .retry("{ attempts: 6, initial_backoff: 50ms, max_backoff: 200ms }")
        .server(&format!(
            "  fingerprint_sha256: \"{}\"\n  connections: 4\n",
            h.pki.fingerprint
        ))
        .folder("    max_delete_percent: 100\n")
        .load(&h.config_path());

    let mut clean = false;
    for attempt in 1..=8 {
        match pass(&config).await {
            Ok(r) if r.failed.is_empty() && r.skipped.is_empty() => {
                let again = pass(&config).await;
                if again
                    .as_ref()
                    .is_ok_and(|a| a.uploaded + a.downloaded == 0 && a.failed.is_empty())
                {
                    clean = true;
                    break;
                }
            }
            Ok(r) => eprintln!("pass {attempt}: {} failed", r.failed.len()),
            Err(e) => eprintln!("pass {attempt}: {e}"),
        }
    }
    let s = &proxy.stats;
    let faults =
        s.cuts.load(Ordering::SeqCst) + s.resets.load(Ordering::SeqCst) + s.stalls.load(Ordering::SeqCst);
    assert!(clean, "no clean pass after 8 tries ({faults} faults injected)");
    assert!(
        faults >= 5,
        "the proxy injected only {faults} faults: the test proves nothing"
    );
    assert_eq!(
        tree(&h.local),
        tree(&h.remote),
        "every file byte-identical on both sides"
    );
    assert_eq!(tree(&h.local).keys().filter(|k| !k.ends_with('/')).count(), 500);
    assert!(part_files(&h.local).is_empty() && part_files(&h.remote).is_empty());
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "FAULTS {} connections through the proxy: {} cut, {} reset, {} stalled; converged\n",
            s.connections.load(Ordering::SeqCst),
            s.cuts.load(Ordering::SeqCst),
            s.resets.load(Ordering::SeqCst),
            s.stalls.load(Ordering::SeqCst)
        )
        .as_bytes(),
    );
}
