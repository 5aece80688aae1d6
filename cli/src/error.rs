//! CLI outcomes mapped to exit codes: 0 success, 1 the ledger rejected something, an audit
//! check failed or an id is unknown, 2 usage or operational error (bad arguments, unreadable
//! file, no server, a panic).

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
    #[error("{0}")]
    Unknown(String),
    /// The ledger refused `count` command(s); the messages were already printed.
    #[error("{count} command(s) rejected; nothing of them was written")]
    Rejected { count: usize },
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Rejected { .. } | CliError::AuditFailed(_) | CliError::Unknown(_) => 1,
            CliError::Usage(_) | CliError::Operational(_) => 2,
        }
    }
}

pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

pub fn operational(message: impl std::fmt::Display) -> CliError {
    CliError::Operational(message.to_string())
}

pub type Result<T> = std::result::Result<T, CliError>;
