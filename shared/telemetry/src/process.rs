//! The process's own figures, read on each scrape: CPU seconds (`getrusage`), resident
//! memory and threads (`/proc/self/status`), the memory it may use (its cgroup's
//! `memory.max`, else the host's `MemTotal`), open and allowed file descriptors
//! (`/proc/self/fd`, `getrlimit`). Named `lockplane_process_*`; on a system without
//! `/proc` the memory, thread and descriptor figures stay at 0.

use std::sync::Mutex;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage};
use prometheus::{Counter, IntGauge, Registry};

/// The process metrics, in a registry of their own.
pub struct ProcessMetrics {
    registry: Registry,
    cpu_seconds: Counter,
    resident_bytes: IntGauge,
    memory_limit_bytes: IntGauge,
    threads: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    /// Held while reading, so that two scrapes do not both raise the CPU counter.
    reading: Mutex<()>,
}

impl ProcessMetrics {
    /// Registers every figure at 0.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let cpu_seconds = Counter::new(
            "lockplane_process_cpu_seconds_total",
            "CPU time the process used, user and system.",
        )?;
        registry.register(Box::new(cpu_seconds.clone()))?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        Ok(Self {
            resident_bytes: gauge(
                "lockplane_process_resident_memory_bytes",
                "Resident memory of the process.",
            )?,
            memory_limit_bytes: gauge(
                "lockplane_process_memory_limit_bytes",
                "Memory the process may use: its cgroup's limit, or the host's memory.",
            )?,
            threads: gauge("lockplane_process_threads", "Threads of the process.")?,
            open_fds: gauge(
                "lockplane_process_open_fds",
                "File descriptors the process has open.",
            )?,
            max_fds: gauge(
                "lockplane_process_max_fds",
                "File descriptors the process may open (its soft limit).",
            )?,
            cpu_seconds,
            registry,
            reading: Mutex::new(()),
        })
    }

    /// Reads the figures now; then the registry, ready to render.
    pub fn scrape(&self) -> &Registry {
        let _reading = self
            .reading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) {
            let seconds = |t: nix::sys::time::TimeVal| {
                #[allow(clippy::cast_precision_loss)]
                let whole = t.tv_sec() as f64;
                #[allow(clippy::cast_precision_loss)]
                let micros = t.tv_usec() as f64;
                whole + micros / 1e6
            };
            let total = seconds(usage.user_time()) + seconds(usage.system_time());
            let have = self.cpu_seconds.get();
            if total > have {
                self.cpu_seconds.inc_by(total - have);
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(kb) = status_field(&status, "VmRSS:") {
                self.resident_bytes.set(kb.saturating_mul(1024));
            }
            if let Some(threads) = status_field(&status, "Threads:") {
                self.threads.set(threads);
            }
        }
        if let Some(limit) = memory_limit() {
            self.memory_limit_bytes.set(limit);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            // The directory read holds one descriptor itself.
            let open = entries.count().saturating_sub(1);
            self.open_fds.set(i64::try_from(open).unwrap_or(i64::MAX));
        }
        if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
            self.max_fds.set(i64::try_from(soft).unwrap_or(i64::MAX));
        }
        &self.registry
    }
}

/// The memory this process may use: the smaller of its cgroup's limit (v2 `memory.max`,
/// where `max` is none; v1 `memory.limit_in_bytes`) and the host's `MemTotal`.
fn memory_limit() -> Option<i64> {
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| status_field(&info, "MemTotal:"))
        .map(|kb| kb.saturating_mul(1024));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| {
            groups.lines().find_map(|line| {
                let file = if let Some(path) = line.strip_prefix("0::") {
                    format!("/sys/fs/cgroup{path}/memory.max")
                } else {
                    let (_, path) = line.split_once(":memory:")?;
                    format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
                };
                std::fs::read_to_string(file)
                    .ok()?
                    .trim()
                    .parse::<i64>()
                    .ok()
            })
        });
    match (host, cgroup) {
        (Some(host), Some(cgroup)) => Some(host.min(cgroup)),
        (host, cgroup) => host.or(cgroup),
    }
}

/// The number after `name` on its line of `/proc/self/status` (`VmRSS:  1234 kB`).
fn status_field(status: &str, name: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_of_this_process() {
        let process = ProcessMetrics::new().unwrap();
        let text = crate::metrics::render(&[process.scrape()]);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .parse()
                .unwrap()
        };
        assert!(
            value("lockplane_process_resident_memory_bytes") > 1e6,
            "{text}"
        );
        assert!(value("lockplane_process_open_fds") >= 3.0, "{text}");
        assert!(value("lockplane_process_max_fds") >= value("lockplane_process_open_fds"));
        assert!(value("lockplane_process_threads") >= 1.0, "{text}");
        assert!(
            value("lockplane_process_memory_limit_bytes")
                > value("lockplane_process_resident_memory_bytes"),
            "{text}"
        );
        assert!(value("lockplane_process_cpu_seconds_total") > 0.0, "{text}");
    }

    #[test]
    fn reads_a_status_field() {
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(2048));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }
}
