//! A throwaway Kafka-protocol broker (`tansu`) for tests: on a free loopback port, with its
//! own SQLite file, stopped (by PID) and restarted on the same port and storage at will,
//! and killed when dropped.
//!
//! The `tansu` binary comes from `LOCKPLANE_TEST_TANSU` (set by `scripts/test.sh`, which
//! installs it once: see DEVELOPERS.md); without it the test fails and says how to get it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One broker process (or none while stopped).
pub struct Broker {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// How long a broker may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

impl Broker {
    /// Starts a broker with empty storage.
    ///
    /// # Panics
    /// When `LOCKPLANE_TEST_TANSU` is not set, or the broker does not listen in time.
    pub fn start() -> Self {
        let binary = std::env::var_os("LOCKPLANE_TEST_TANSU")
            .map(PathBuf::from)
            .expect(
                "LOCKPLANE_TEST_TANSU is not set: run ./scripts/test.sh (it installs tansu 0.6.0 \
             once and sets it), or point it at a tansu binary",
            );
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lockplane-tansu-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = Self {
            binary,
            dir,
            port,
            child: None,
        };
        broker.resume();
        broker
    }

    /// `host:port` for clients.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the broker process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the broker (SIGKILL); its storage stays for [`Broker::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage, and waits until it listens.
    ///
    /// # Panics
    /// When it does not listen within 20 s.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("broker log");
        let child = Command::new(&self.binary)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_LIMIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "tansu did not listen on {addr} (exit: {exited:?}); see {}",
                self.dir.join("broker.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
