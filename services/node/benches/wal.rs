//! Group-commit throughput of the node's write-ahead log.
//!
//! `cargo bench -p lockplane-node --bench wal` runs C appenders for each C in `CLIENTS`
//! (default `1,16,64,256`), each on its own group, each appending one 100-byte entry and
//! waiting for it to be durable before the next, for `SECONDS` (default 3) per run. Set
//! `WAL_DIR` to pick the disk (default: the system temp dir).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use lockplane_node::wal::{LogEngine, LogEntry, Options};

#[derive(Clone)]
struct Entry(Vec<u8>);

impl LogEntry for Entry {
    fn encode(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.extend_from_slice(&self.0);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        Ok(Entry(bytes.to_vec()))
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> io::Result<()> {
    let seconds: u64 = env("SECONDS", 3);
    let clients: Vec<u32> = std::env::var("CLIENTS")
        .unwrap_or_else(|_| "1,16,64,256".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let base = std::env::var("WAL_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    println!("| appenders | appends/s | fsyncs/s | appends per fsync | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for c in clients {
        let dir = base.join(format!("lockplane-wal-bench-{}-{c}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = LogEngine::<Entry>::open(&dir, Options::default())?;
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..c)
                .map(|group| {
                    let handle = engine.group(group);
                    let stop = Arc::clone(&stop);
                    scope.spawn(move || {
                        let mut lat = Vec::new();
                        let mut index = 1;
                        while !stop.load(Ordering::Relaxed) {
                            let (tx, rx) = mpsc::channel();
                            let t = Instant::now();
                            handle.append(
                                index,
                                vec![Entry(vec![7; 100])],
                                Box::new(move |r| drop(tx.send(r))),
                            );
                            if rx.recv().map_or(true, |r| r.is_err()) {
                                break;
                            }
                            lat.push(t.elapsed());
                            index += 1;
                        }
                        lat
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(seconds));
            stop.store(true, Ordering::Relaxed);
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let stats = engine.stats();
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let appends = latencies.len() as f64;
        println!(
            "| {c} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} |",
            appends / elapsed,
            stats.fsyncs as f64 / elapsed,
            appends / stats.fsyncs.max(1) as f64,
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}
