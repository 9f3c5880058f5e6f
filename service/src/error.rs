//! What can go wrong in an operation, in terms a caller can act on. Messages are safe to show
//! a client: a database's own text is logged here and never carried on.

use std::borrow::Cow;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A field or argument holds a value we refuse; `field` is the name the client used.
    Invalid {
        field: Cow<'static, str>,
        problem: Cow<'static, str>,
    },
    /// The addressed thing does not exist.
    NotFound { what: &'static str, id: i64 },
    /// No PUSH monitor has the token pushed to.
    UnknownPushToken,
    /// The operation does not fit the monitor's state or kind (a push to a paused monitor, a
    /// manual check of a PUSH monitor): the message says why.
    Conflict(Cow<'static, str>),
    /// The database cannot be reached (or the result could not be stored); retrying later may
    /// work.
    Unavailable,
    /// An unexpected failure; details are in the log only.
    Internal,
}

impl Error {
    /// A field-level validation error.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<store::Error> for Error {
    /// Logs the database's own message and keeps only what a client may know.
    fn from(err: store::Error) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            Self::Unavailable
        } else {
            tracing::error!(error = %err, "database error");
            Self::Internal
        }
    }
}
