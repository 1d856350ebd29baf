//! PostgreSQL for tests. [`Database`]: a database of a test's own on the machine's server,
//! dropped when the test ends (even by a panic); the server is `LOCKPLANE_TEST_POSTGRES`,
//! by default `postgres://postgres@127.0.0.1:5432` (`scripts/test.sh` makes sure it
//! answers), and the database is created and dropped with `psql`. [`Server`]: a server of
//! the test's own (`initdb` in a temporary directory, on a free loopback port), which the
//! test may stop and start again; never the machine's.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// One database, dropped on drop.
pub struct Database {
    server: String,
    name: String,
}

impl Database {
    /// Creates a fresh database named after `test` (lowercase letters, digits, `_`).
    ///
    /// # Panics
    /// When the server refuses (or `psql` is missing).
    pub fn create(test: &str) -> Self {
        static CREATED: AtomicU32 = AtomicU32::new(0);
        let server = std::env::var("LOCKPLANE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
        let name = format!(
            "lockplane_{test}_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let database = Self { server, name };
        database.admin(&format!("DROP DATABASE IF EXISTS {}", database.name));
        database.admin(&format!("CREATE DATABASE {}", database.name));
        database
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    fn admin(&self, sql: &str) {
        let output = Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(format!("{}/postgres", self.server))
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            output.status.success(),
            "psql {sql:?} on {}: {}",
            self.server,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .arg(format!("{}/postgres", self.server))
            .output();
    }
}

/// A PostgreSQL server of a test's own: its data in a temporary directory, on a free
/// loopback port, trusting local connections for user `postgres`. Run as the `postgres`
/// user when the test runs as root (PostgreSQL refuses root). Stopped and removed on drop.
pub struct Server {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    running: bool,
}

impl Server {
    /// Makes and starts one.
    ///
    /// # Panics
    /// When PostgreSQL's programs are missing or the server does not start.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lockplane-pg-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            bin,
            dir,
            port,
            running: false,
        };
        server.as_owner(&["chown", "-R", "postgres:postgres"], true);
        let data = server.data();
        server.run("initdb", &["-A", "trust", "-U", "postgres", "-D", &data]);
        server.resume();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs `program` of PostgreSQL's as the server's owner.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program).display().to_string();
        let mut all = vec![path.as_str()];
        all.extend_from_slice(args);
        self.as_owner(&all, false);
    }

    /// Runs a command as `postgres` when root (or as is); `chown` of the directory runs
    /// as root.
    fn as_owner(&self, command: &[&str], on_dir: bool) {
        let root = std::env::var("USER").is_ok_and(|u| u == "root")
            || Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if on_dir && !root {
            return;
        }
        let mut cmd = if root && !on_dir {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(command);
            c
        } else {
            let mut c = Command::new(command[0]);
            c.args(&command[1..]);
            c
        };
        if on_dir {
            cmd.arg(&self.dir);
        }
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The server's URL (database `postgres`); add a database of its own with
    /// [`Server::create_database`].
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `name`.
    pub fn create_database(&self, name: &str) {
        let output = Command::new("psql")
            .args([
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .arg(self.url("postgres"))
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the server at once (`immediate`: like a crash; it recovers on start).
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data();
            self.run("pg_ctl", &["stop", "-m", "immediate", "-w", "-D", &data]);
            self.running = false;
        }
    }

    /// Starts it again on the same port and data, and waits until it answers.
    pub fn resume(&mut self) {
        if self.running {
            return;
        }
        let data = self.data();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &["start", "-w", "-D", &data, "-l", &log, "-o", &options],
        );
        self.running = true;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
