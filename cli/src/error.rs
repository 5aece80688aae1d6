//! CLI outcomes mapped to exit codes: 0 success, 1 the ledger rejected something, an audit
//! check failed or an id is unknown, 2 usage or operational error (bad arguments, unreadable
//! file, no server, a panic).
//!
//! With `--format json` a failure is also written on stdout as one error object
//! ([`json_object`], `schemas/v1/cli-error.schema.json`); the exit code and the message on
//! stderr are the same as without it.

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments or input are wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// Something around the ledger failed (files, storage, network).
    #[error("{0}")]
    Operational(String),
    /// An audit check found a problem (a bad record, checkpoint or proof).
    #[error("{0}")]
    AuditFailed(String),
    /// An id the operator typed names nothing the ledger knows (a material, partner, party,
    /// facility or lot); the message says which and suggests the closest known one.
    #[error("{message}")]
    Unknown {
        message: String,
        /// The closest known id, if one is close enough to suggest.
        suggestion: Option<String>,
    },
    /// The ledger refused `count` command(s); the messages were already printed (with
    /// `--format json`, as the results array on stdout, which is then the failure's JSON).
    #[error("{count} command(s) rejected; nothing of them was written")]
    Rejected { count: usize },
    /// A failure whose JSON the command already wrote on stdout (`audit verify`'s failure
    /// object): main prints no second object.
    #[error("{0}")]
    Printed(Box<CliError>),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Rejected { .. } | CliError::AuditFailed(_) | CliError::Unknown { .. } => 1,
            CliError::Usage(_) | CliError::Operational(_) => 2,
            CliError::Printed(inner) => inner.exit_code(),
        }
    }

    /// The stable name of the failure's kind, the error object's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Operational(_) => "operational",
            CliError::AuditFailed(_) => "audit_failed",
            CliError::Unknown { .. } => "unknown_id",
            CliError::Rejected { .. } => "rejected",
            CliError::Printed(inner) => inner.code(),
        }
    }

    /// Whether stdout already holds this failure's JSON (a results array, a verification
    /// failure), so no error object is to be added.
    pub fn json_printed(&self) -> bool {
        matches!(self, CliError::Rejected { .. } | CliError::Printed(_))
    }

    fn suggestions(&self) -> Vec<String> {
        match self {
            CliError::Unknown { suggestion, .. } => suggestion.iter().cloned().collect(),
            CliError::Printed(inner) => inner.suggestions(),
            _ => Vec::new(),
        }
    }

    /// The error object `--format json` prints on stdout.
    pub fn json(&self) -> serde_json::Value {
        json_object(self.code(), &self.to_string(), self.exit_code(), &self.suggestions())
    }
}

/// `{"error": {"code", "message", "exit_code", "suggestions"}}`: what every command prints on
/// stdout when it fails under `--format json` (`suggestions` may be empty; each is an id or
/// argument to use instead of the one given).
pub fn json_object(code: &str, message: &str, exit_code: i32, suggestions: &[String]) -> serde_json::Value {
    serde_json::json!({
        "error": {"code": code, "message": message, "exit_code": exit_code, "suggestions": suggestions}
    })
}

pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

pub fn operational(message: impl std::fmt::Display) -> CliError {
    CliError::Operational(message.to_string())
}

pub type Result<T> = std::result::Result<T, CliError>;
