//! The store's one error type. Its text is for the log: callers show clients only whether the
//! database was unavailable or failed.

use sea_orm::DbErr;

/// Why the database could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached, or is locked past its busy timeout; retrying later may
    /// work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a refused statement, a row that does not decode.
    #[error("database error: {0}")]
    Failed(String),
}

impl Error {
    /// Whether waiting for the database may help.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A lost or unobtainable connection, or SQLite's lock held past the busy timeout, is
    /// "unavailable"; everything else failed.
    pub(crate) fn from_db(err: DbErr) -> Self {
        let message = err.to_string();
        if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
            || message.contains("database is locked")
        {
            Self::Unavailable(message)
        } else {
            Self::Failed(message)
        }
    }

    /// A busy, locked or unopenable SQLite database is "unavailable"; anything else failed.
    pub(crate) fn from_sqlite(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let unavailable = matches!(
            err.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen)
        );
        let message = format!("SQLite: {err}");
        if unavailable {
            Self::Unavailable(message)
        } else {
            Self::Failed(message)
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Self::from_db(err)
    }
}
