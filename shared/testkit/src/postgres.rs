//! A PostgreSQL database of a test's own on the machine's server, dropped when the test
//! ends (even by a panic). The server is `LOCKPLANE_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432` (`scripts/test.sh` makes sure it answers); the
//! database is created and dropped with `psql`, which ships with the server.

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
