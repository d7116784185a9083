use crate::domain::validation::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique value is taken, or the store's state forbids the change (short stock).
    #[error("{message}")]
    Conflict {
        message: String,
        details: Vec<FieldError>,
    },
    /// The input refers to things that do not exist.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The database cannot be reached, is locked, or the disk is full: try again later.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// From the history writer's own SQLite connection.
    #[error("database error")]
    Embedded(#[source] rusqlite::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or reached at start: the settings may be right and
    /// the database down, missing or unreadable; or its file was deleted under the server.
    #[error("{0}")]
    Open(String),
    /// A stored value that the program cannot read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Conflict {
            details: vec![FieldError {
                field: field.to_owned(),
                message: message.clone(),
            }],
            message,
        }
    }

    /// Whether the call already waited the pool's whole timeout for a connection (the
    /// database is down or restarting): waiting again would only double the client's wait.
    pub fn waited_out(&self) -> bool {
        matches!(self, Self::Unavailable(sqlx::Error::PoolTimedOut))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::RowNotFound => Self::NotFound,
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                Self::Unavailable(error)
            }
            E::Database(db) if is_transient(db.as_ref()) => Self::Unavailable(error),
            _ => Self::Database(error),
        }
    }
}

/// Whether trying again later may succeed.
fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    if error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        is_transient_postgres(&code)
    } else {
        is_transient_sqlite(&code)
    }
}

/// SQLite: busy, locked, I/O error, disk full, cannot open (the primary code is the low byte
/// of the extended code).
fn is_transient_sqlite(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// PostgreSQL: connection exceptions (08), insufficient resources such as too many
/// connections or a full disk (53), the server shutting down or starting (57P), a deadlock or
/// serialization failure the transaction lost (40001, 40P01), a read-only server during a
/// failover (25006), and I/O errors (58030).
fn is_transient_postgres(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "25006" | "58030")
}

#[cfg(test)]
mod tests {
    use super::{is_transient_postgres, is_transient_sqlite};

    #[test]
    fn transient_codes_are_told_apart_per_backend() {
        // SQLITE_BUSY, SQLITE_LOCKED_SHAREDCACHE, SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_CANTOPEN
        for code in ["5", "262", "778", "13", "14"] {
            assert!(is_transient_sqlite(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE
        assert!(!is_transient_sqlite("2067"));
        // connection failure, too many connections, disk full, admin shutdown, deadlock
        for code in ["08006", "53300", "53100", "57P01", "40P01", "40001"] {
            assert!(is_transient_postgres(code), "{code}");
        }
        // unique violation, syntax error, check violation
        for code in ["23505", "42601", "23514"] {
            assert!(!is_transient_postgres(code), "{code}");
        }
    }
}
