//! A delay proxy for the long-distance benchmark (`bench/compare.py --link wan`), not part of
//! ftps-sync. It listens on `LISTEN_IP` at each given port (the control port and the server's
//! whole passive range), forwards each connection to the same port on `TARGET_IP`, and holds
//! every byte for half the round trip in each direction, optionally at a capped rate. The
//! server announces `LISTEN_IP` as its passive address, so every tool's data goes through it.
//!
//! ```text
//! cargo run --release --example delay_proxy -- 127.0.0.2 127.0.0.1 2121,30000-30099 20 [MBIT]
//! ```
//!
//! Delay is added per chunk as it is read, so a stream keeps its throughput (up to what TCP's
//! window allows over the round trip) and only gains latency, as on a long link.
//!
//! It counts what costs round trips: a line `stats` on its stdin prints
//! `STATS turns=T data=D control=C`, the totals so far of control-channel turns (the client
//! speaking again after the server did: one command, or one pipelined batch, waited for),
//! data connections and control connections. The first port given is the control port.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CHUNK: usize = 256 << 10;
/// Chunks in flight per direction: enough for 1 GB/s over 100 ms.
const IN_FLIGHT: usize = 512;

static TURNS: AtomicU64 = AtomicU64::new(0);
static DATA: AtomicU64 = AtomicU64::new(0);
static CONTROL: AtomicU64 = AtomicU64::new(0);

/// Which way a pump carries a control connection, and whether the server spoke last on it.
#[derive(Clone)]
enum Role {
    Data,
    ClientToServer(Arc<AtomicBool>),
    ServerToClient(Arc<AtomicBool>),
}

struct Link {
    one_way: Duration,
    /// Bytes per second per direction of each connection; `None`: as fast as it goes.
    rate: Option<f64>,
}

fn ports(spec: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let bad = || format!("bad port list {spec:?}");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Arc<Link>, role: Role) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let (one_way, rate) = (link.one_way, link.rate);
    tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            buf.truncate(n);
            match &role {
                Role::ClientToServer(server_spoke)
                    if n > 0 && server_spoke.swap(false, Ordering::Relaxed) =>
                {
                    TURNS.fetch_add(1, Ordering::Relaxed);
                }
                Role::ServerToClient(server_spoke) if n > 0 => server_spoke.store(true, Ordering::Relaxed),
                _ => {}
            }
            // An empty chunk carries the end of the stream, delayed like the bytes before it.
            if tx.send((Instant::now() + one_way, buf)).await.is_err() || n == 0 {
                return;
            }
        }
    });
    let mut sent = 0f64;
    let start = Instant::now();
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if chunk.is_empty() {
            break;
        }
        if to.write_all(&chunk).await.is_err() {
            break;
        }
        if let Some(rate) = rate {
            sent += chunk.len() as f64;
            tokio::time::sleep_until(start + Duration::from_secs_f64(sent / rate)).await;
        }
    }
    let _ = to.shutdown().await;
}

async fn serve(listener: TcpListener, target: SocketAddr, link: Arc<Link>, control: bool) {
    while let Ok((client, _)) = listener.accept().await {
        let link = link.clone();
        (if control { &CONTROL } else { &DATA }).fetch_add(1, Ordering::Relaxed);
        let server_spoke = Arc::new(AtomicBool::new(false));
        let (up, down) = if control {
            (
                Role::ClientToServer(server_spoke.clone()),
                Role::ServerToClient(server_spoke),
            )
        } else {
            (Role::Data, Role::Data)
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pump(cr, sw, link.clone(), up), pump(sr, cw, link, down));
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: delay_proxy LISTEN_IP TARGET_IP PORTS RTT_MS [MBIT]".into());
    }
    let listen: IpAddr = args[1].parse().map_err(|e| format!("listen ip: {e}"))?;
    let target: IpAddr = args[2].parse().map_err(|e| format!("target ip: {e}"))?;
    let ports = ports(&args[3])?;
    let rtt: f64 = args[4].parse().map_err(|e| format!("rtt: {e}"))?;
    let rate = match args.get(5) {
        Some(m) => Some(m.parse::<f64>().map_err(|e| format!("rate: {e}"))? * 1e6 / 8.0),
        None => None,
    };
    let link = Arc::new(Link {
        one_way: Duration::from_secs_f64(rtt / 2000.0),
        rate,
    });
    for (i, port) in ports.into_iter().enumerate() {
        let listener = TcpListener::bind((listen, port))
            .await
            .map_err(|e| format!("bind {listen}:{port}: {e}"))?;
        tokio::spawn(serve(
            listener,
            SocketAddr::new(target, port),
            link.clone(),
            i == 0,
        ));
    }
    println!("READY");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "stats" {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            println!(
                "STATS turns={} data={} control={}",
                get(&TURNS),
                get(&DATA),
                get(&CONTROL)
            );
        }
    }
    // Stdin closed: keep forwarding until killed.
    std::future::pending::<()>().await;
    Ok(())
}
