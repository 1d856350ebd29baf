//! What a call can fail with, read from the gateway's problem+json answers.

use std::time::Duration;

use serde_json::Value;

/// Who holds a lock, as a conflict reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's owner string.
    pub owner: String,
    /// The holder's fencing token.
    pub fencing_token: u64,
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The lock is held by someone else (`409`, `held`).
    #[error("lock is held by {} (token {})", .0.owner, .0.fencing_token)]
    Held(Holder),
    /// The caller is not the lock's holder: stale or foreign token (`409`).
    #[error("{0}")]
    NotHolder(String),
    /// Nobody holds the lock, or the session or route does not exist (`404`).
    #[error("{0}")]
    NotFound(String),
    /// The lock is in its lock-delay after an expiry (`409`): nobody gets it before
    /// `retry_after` has passed.
    #[error("{detail}")]
    LockDelayed {
        /// How long the lock-delay still runs.
        retry_after: Duration,
        /// What happened, with the instant it ends.
        detail: String,
    },
    /// A blocking acquire's wait ran out (`408`).
    #[error("wait timed out")]
    WaitTimedOut,
    /// A field is invalid (`400`); the detail names it.
    #[error("{detail}")]
    Invalid {
        /// The field the gateway named.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The API key is missing or unknown (`401`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A waiting call's deadline passed while a later call of the same wait had renewed it
    /// (`503`, `wait-renewed`): this call decided nothing; the wait goes on.
    #[error("{0}")]
    WaitRenewed(String),
    /// Retry later (`429`, `503`): rate limit, no leader or quorum right now.
    #[error("{detail}")]
    Unavailable {
        /// How long the gateway asked to wait.
        retry_after: Duration,
        /// What happened.
        detail: String,
    },
    /// The gateway could not be reached, or answered something unreadable; the message
    /// names the URL.
    #[error("{0}")]
    Transport(String),
    /// The client was set up with something unusable (a CA certificate file that holds
    /// none).
    #[error("{0}")]
    Config(String),
    /// Any other refusal, with its problem `type` and detail.
    #[error("{status} {problem_type}: {detail}")]
    Other {
        /// The HTTP status.
        status: u16,
        /// The problem `type`.
        problem_type: String,
        /// The detail.
        detail: String,
    },
}

impl ClientError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unavailable { .. } | ClientError::Transport(_)
        )
    }

    /// The error an answer of `status` with problem `body` stands for.
    pub(crate) fn from_problem(status: u16, retry_after: Option<u64>, body: &Value) -> Self {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_string();
        let (problem_type, detail) = (text("type"), text("detail"));
        match (status, problem_type.as_str()) {
            (409, "/problems/held") => ClientError::Held(Holder {
                owner: body["holder"]["owner"].as_str().unwrap_or_default().into(),
                fencing_token: body["holder"]["fencing_token"].as_u64().unwrap_or(0),
            }),
            (409, "/problems/not-holder") => ClientError::NotHolder(detail),
            (409, "/problems/lock-delayed") => ClientError::LockDelayed {
                retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                detail,
            },
            (404, _) => ClientError::NotFound(detail),
            (408, _) => ClientError::WaitTimedOut,
            (400, _) => ClientError::Invalid {
                field: text("field"),
                detail,
            },
            (401, _) => ClientError::Unauthenticated(detail),
            (503, "/problems/wait-renewed") => ClientError::WaitRenewed(detail),
            (429 | 503, _) => ClientError::Unavailable {
                retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                detail,
            },
            _ => ClientError::Other {
                status,
                problem_type,
                detail,
            },
        }
    }
}
