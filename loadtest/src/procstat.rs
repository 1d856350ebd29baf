//! What the server processes of a target cost: CPU time and resident memory, read from
//! `/proc` for the PIDs the caller names (`--server-pid`), so a run can report CPU per
//! operation and bytes per held lock.

use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`, fixed at 100 in Linux's
/// ABI on the architectures we run on).
const TICKS_PER_SECOND: u64 = 100;

/// The server processes of one target.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    pids: Vec<u32>,
}

/// One reading of every server process.
#[derive(Debug, Clone)]
pub struct Sample {
    /// CPU time (user + system, all threads) summed over the processes.
    pub cpu: Duration,
    /// Resident set size of each process, in bytes, in PID order.
    pub rss: Vec<u64>,
}

impl Servers {
    /// The processes with these PIDs.
    pub fn new(pids: Vec<u32>) -> Self {
        Self { pids }
    }

    /// Reads every process now; `None` when none was named.
    pub fn sample(&self) -> anyhow::Result<Option<Sample>> {
        if self.pids.is_empty() {
            return Ok(None);
        }
        let mut ticks = 0;
        let mut rss = Vec::with_capacity(self.pids.len());
        for &pid in &self.pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .with_context(|| format!("cannot read /proc/{pid}/stat (is server {pid} up?)"))?;
            ticks += cpu_ticks(&stat).with_context(|| format!("bad /proc/{pid}/stat"))?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .with_context(|| format!("cannot read /proc/{pid}/status"))?;
            rss.push(resident_bytes(&status).with_context(|| format!("no VmRSS for {pid}"))?);
        }
        Ok(Some(Sample {
            cpu: Duration::from_millis(ticks * 1_000 / TICKS_PER_SECOND),
            rss,
        }))
    }
}

/// `utime + stime` of a `/proc/PID/stat` line (fields 14 and 15; the command name in
/// field 2 may hold spaces, so count from its closing parenthesis).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1_024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_name_with_spaces() {
        let stat =
            "4242 (tokio worker 1) S 1 4242 4242 0 -1 4194560 512 0 0 0 731 269 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(1_000));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn resident_bytes_come_from_vm_rss() {
        let status = "Name:\tredis\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(2 * 1_024 * 1_024));
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = Servers::new(vec![std::process::id()]);
        let sample = me.sample().unwrap().unwrap();
        assert_eq!(sample.rss.len(), 1);
        assert!(sample.rss[0] > 0);
        assert!(Servers::default().sample().unwrap().is_none());
    }
}
