//! How a command ends when it fails: a message said once, a stable `kind` for `--json`,
//! and a `sysexits` code, so scripts can tell "try again later" from "fix your command".

use std::fmt;
use std::process::ExitCode;

use lockplane_client::ClientError;
use lockplane_proto::lock::ErrorCode;
use lockplane_proto::{RpcError, human};
use serde_json::{Map, Value, json};

/// Exit codes (`sysexits.h`), as `lockplane --help` lists them.
pub mod exit {
    /// A flag or argument is wrong (EX_USAGE).
    pub const USAGE: u8 = 64;
    /// The gateway or cluster cannot be reached (EX_UNAVAILABLE).
    pub const UNAVAILABLE: u8 = 69;
    /// The server answered something this program did not expect (EX_SOFTWARE).
    pub const SOFTWARE: u8 = 70;
    /// Try again later: the lock is held, was lost, the wait timed out, the cluster is
    /// busy or electing (EX_TEMPFAIL).
    pub const TEMPFAIL: u8 = 75;
    /// The API key or admin token is missing, unknown or not allowed (EX_NOPERM).
    pub const NOPERM: u8 = 77;
}

/// The exit codes section of `lockplane --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  64   usage: a flag or argument is wrong (the message names it and what is allowed)
  69   unavailable: the gateway or cluster cannot be reached
  70   the server answered something unexpected
  75   temporary failure: the lock is held, was lost, or the wait timed out; the cluster
       is electing or busy (retry later)
  77   permission: the API key or admin token is missing, unknown or not allowed
  126  hold: the command cannot be executed
  127  hold: the command was not found
  any other: hold passes on the command's own exit code (128+N when signal N ended it)";

/// Ends the command with a usage failure (exit 64), its message built as by `format!`.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::failure::Failure::usage(format!($($arg)*)).into())
    };
}
pub(crate) use usage;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    exit: u8,
    kind: &'static str,
    message: String,
    details: Map<String, Value>,
}

impl Failure {
    /// A failure of `kind` ending the program with `exit`.
    pub fn new(exit: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            exit,
            kind,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// A wrong flag or argument.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, "usage", message)
    }

    /// Adds a machine-readable detail to the `--json` form.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.details.insert(name.to_string(), value);
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        self.exit
    }

    /// The `--json` form: `{"error": {"kind", "message", "exit_code", ...details}}`.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        error.insert("exit_code".into(), json!(self.exit));
        error.extend(self.details.clone());
        json!({ "error": error })
    }

    /// `error` of a call to the gateway at `url` (`default_url`: the URL was not chosen,
    /// so `lockplane dev` is the likely missing piece).
    pub fn from_client(error: ClientError, url: &str, default_url: bool) -> Self {
        match error {
            ClientError::Held(holder) => Self::new(
                exit::TEMPFAIL,
                "held",
                format!(
                    "held by {} (fencing token {})",
                    holder.owner, holder.fencing_token
                ),
            )
            .with(
                "holder",
                json!({"owner": holder.owner, "fencing_token": holder.fencing_token}),
            ),
            ClientError::LockDelayed {
                retry_after,
                detail,
            } => Self::new(exit::TEMPFAIL, "lock-delayed", detail)
                .with("retry_after_ms", json!(millis(retry_after))),
            ClientError::NotHolder(detail) => Self::new(exit::TEMPFAIL, "not-holder", detail),
            ClientError::NotFound(detail) => Self::new(exit::TEMPFAIL, "not-found", detail),
            ClientError::WaitTimedOut => {
                Self::new(exit::TEMPFAIL, "wait-timed-out", "the wait timed out")
            }
            ClientError::WaitRenewed(detail) => Self::new(exit::TEMPFAIL, "unavailable", detail),
            ClientError::Invalid { field, detail } => {
                Self::usage(detail).with("field", json!(field))
            }
            ClientError::Unauthenticated(detail) => Self::new(
                exit::NOPERM,
                "unauthenticated",
                format!("{detail} (pass --api-key or set LOCKPLANE_API_KEY)"),
            ),
            ClientError::Unavailable {
                retry_after,
                detail,
            } => Self::new(
                exit::TEMPFAIL,
                "unavailable",
                format!("{detail}; retry in {}", human::duration(retry_after)),
            )
            .with("retry_after_ms", json!(millis(retry_after))),
            ClientError::Transport(detail) => {
                let hint = if detail.contains("invalid peer certificate") {
                    format!(
                        "{detail} (--ca-cert or LOCKPLANE_CA_CERT names the CA that signed \
                         the gateway's certificate)"
                    )
                } else if detail.contains("invalid HTTP version") {
                    format!("{detail} (the gateway may serve https://)")
                } else if default_url {
                    format!(
                        "{detail} (is a gateway running? `lockplane dev` starts one on {url}; \
                         --url or LOCKPLANE_URL names another)"
                    )
                } else {
                    detail
                };
                Self::new(exit::UNAVAILABLE, "unavailable", hint).with("url", json!(url))
            }
            ClientError::Config(detail) => Self::usage(detail),
            ClientError::Other {
                status,
                problem_type,
                detail,
            } => {
                let exit = match status {
                    401 | 403 => exit::NOPERM,
                    429 | 503 => exit::TEMPFAIL,
                    400..=499 => exit::USAGE,
                    _ => exit::SOFTWARE,
                };
                Self::new(exit, "error", format!("{detail} ({status} {problem_type})"))
                    .with("status", json!(status))
            }
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A hint for a transport failure that TLS settings may explain.
fn tls_hint(error: &RpcError) -> &'static str {
    let message = &error.detail().message;
    if message.contains("h2 protocol error") || message.contains("connection reset") {
        " (if the cluster uses mutual TLS, pass --cluster-ca, --cluster-cert and --cluster-key)"
    } else if message.contains("invalid peer certificate") {
        " (the node's certificate is not from --cluster-ca)"
    } else {
        ""
    }
}

/// The failure of an admin call: what was tried, where, and why, with its exit code.
pub fn failed(what: &str, endpoint: &str, error: RpcError) -> anyhow::Error {
    let code = match error.code() {
        ErrorCode::PermissionDenied | ErrorCode::Unauthenticated => exit::NOPERM,
        ErrorCode::InvalidArgument => exit::USAGE,
        _ if matches!(error, RpcError::Retryable(_)) => exit::UNAVAILABLE,
        _ => exit::TEMPFAIL,
    };
    let kind = if code == exit::NOPERM {
        "permission-denied"
    } else {
        "admin"
    };
    let message = format!("{}{}", error.detail().message, tls_hint(&error));
    anyhow::Error::new(Failure::new(code, kind, message)).context(format!("{what} via {endpoint}"))
}

/// Prints `error` (as text on standard error, or with `json` as one JSON object on
/// standard output) and the exit code it ends the program with: a [`Failure`]'s own, 1 for
/// any other error.
pub fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    let failure = error.downcast_ref::<Failure>();
    let exit = failure.map_or(1, Failure::exit_code);
    if json {
        let mut value = failure.map_or_else(
            || json!({"error": {"kind": "error", "exit_code": exit}}),
            Failure::to_json,
        );
        value["error"]["message"] = json!(format!("{error:#}"));
        println!("{value}");
    } else {
        eprintln!("lockplane: {error:#}");
    }
    ExitCode::from(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_failure_names_the_url_and_points_to_dev_only_by_default() {
        let refused = || {
            ClientError::Transport("cannot reach http://127.0.0.1:7070: connection refused".into())
        };
        let by_default = Failure::from_client(refused(), "http://127.0.0.1:7070", true);
        assert_eq!(by_default.exit_code(), exit::UNAVAILABLE);
        assert!(
            by_default
                .to_string()
                .contains("`lockplane dev` starts one on http://127.0.0.1:7070")
        );
        let chosen = Failure::from_client(refused(), "http://127.0.0.1:7070", false);
        assert!(!chosen.to_string().contains("lockplane dev"));
        assert_eq!(chosen.to_json()["error"]["url"], "http://127.0.0.1:7070");
    }

    #[test]
    fn each_answer_gets_its_sysexits_code() {
        let held = ClientError::Held(lockplane_client::Holder {
            owner: "me".into(),
            fencing_token: 7,
        });
        let cases = [
            (held, exit::TEMPFAIL),
            (ClientError::WaitTimedOut, exit::TEMPFAIL),
            (
                ClientError::Unauthenticated("unknown API key".into()),
                exit::NOPERM,
            ),
            (
                ClientError::Invalid {
                    field: "key".into(),
                    detail: "key must not be empty".into(),
                },
                exit::USAGE,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Failure::from_client(error, "u", false).exit_code(), code);
        }
    }
}
