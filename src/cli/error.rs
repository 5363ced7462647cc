//! Why a command failed, and its exit code (sysexits where one fits).

use crate::accounts::AccountsError;
use crate::app::StartError;
use crate::config::ConfigError;
use crate::db::DbError;
use crate::signing::SigningError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    /// The server could not start.
    #[error("{0}")]
    Start(#[from] StartError),
    /// Database failure in a command.
    #[error("{0}")]
    Db(#[from] DbError),
    /// I/O failure in a command.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `veza sign` input that cannot be signed (exit 2, like a usage error).
    #[error("sign: {0}")]
    SignInput(String),
    /// No provider could sign (exit 78: every cause is configuration or a key file).
    #[error("sign: {0}")]
    Sign(SigningError),
    /// Bad input to an account command (exit 2).
    #[error("{0}")]
    Input(String),
    /// `veza import` finished with failures, or could not run (exit 1).
    #[error("import: {0}")]
    Import(String),
    /// An account command failed for a reason other than its input.
    #[error("{0}")]
    Accounts(AccountsError),
    /// A job command failed for a reason other than its input.
    #[error("{0}")]
    Jobs(crate::jobs::JobError),
    /// A library command failed for a reason other than its input.
    #[error("{0}")]
    Library(crate::library::LibraryError),
    /// The data dir or database a command needs does not exist (exit 66, EX_NOINPUT).
    #[error("{0}")]
    NoDatabase(String),
    /// `veza backup`, `restore` or `check` failed (its own sysexits code).
    #[error("{0}")]
    Backup(#[from] crate::backup::BackupError),
}

impl From<crate::jobs::JobError> for CliError {
    fn from(e: crate::jobs::JobError) -> CliError {
        use crate::jobs::JobError as J;
        match e {
            J::NotFound | J::NotRetryable { .. } | J::AlreadyPending { .. } => {
                CliError::Input(e.to_string())
            }
            e => CliError::Jobs(e),
        }
    }
}

impl From<AccountsError> for CliError {
    fn from(e: AccountsError) -> CliError {
        match e {
            AccountsError::InvalidUsername(_)
            | AccountsError::WeakPassword(_)
            | AccountsError::UsernameTaken(_)
            | AccountsError::NotFound(_)
            | AccountsError::LastAdmin => CliError::Input(e.to_string()),
            e => CliError::Accounts(e),
        }
    }
}

impl CliError {
    /// 78 (EX_CONFIG) for configuration errors, 2 for bad input, 66 (EX_NOINPUT) for a
    /// missing database, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Sign(_) => 78,
            CliError::SignInput(_) | CliError::Input(_) => 2,
            CliError::NoDatabase(_) => 66,
            CliError::Start(e) => e.exit_code(),
            CliError::Backup(e) => e.exit_code(),
            CliError::Db(_)
            | CliError::Io(_)
            | CliError::Accounts(_)
            | CliError::Jobs(_)
            | CliError::Library(_)
            | CliError::Import(_) => 1,
        }
    }
}
