//! Takes a lock, does "work" with its fencing token while the guard renews the lease, and
//! releases it. Run against `lockplane dev`:
//!
//! ```sh
//! LOCKPLANE_API_KEY=<printed key> cargo run -p lockplane-client --example acquire
//! ```

use std::process::ExitCode;
use std::time::Duration;

use lockplane_client::{AcquireOptions, Client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("LOCKPLANE_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let Ok(key) = std::env::var("LOCKPLANE_API_KEY") else {
        eprintln!("set LOCKPLANE_API_KEY to the key `lockplane dev` printed");
        return ExitCode::FAILURE;
    };
    let client = Client::new(&url, &key);
    let options =
        AcquireOptions::new("example", Duration::from_secs(10)).wait(Duration::from_secs(30));
    let guard = match client.acquire("example/lock", options).await {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("cannot acquire: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "holding example/lock with fencing token {}",
        guard.fencing_token()
    );
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(3)) => println!("work done"),
        () = guard.lost() => {
            eprintln!("lost the lock: stop using the token");
            return ExitCode::FAILURE;
        }
    }
    match guard.release().await {
        Ok(()) => {
            println!("released");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot release: {e}");
            ExitCode::FAILURE
        }
    }
}
