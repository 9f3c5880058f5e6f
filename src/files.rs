//! Open files: the limit raised to its hard limit and shared between checks in flight and the
//! API's connections, so neither can take the descriptors the other needs.

/// File descriptors kept free of the API's connections, beside one per check in flight and
/// per database connection: the broker, the listener, log files, DNS.
const RESERVED_FILES: u64 = 128;

/// How a process's open files are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileShare {
    pub(crate) checks: usize,
    pub(crate) connections: usize,
}

/// Raises the open-file limit to its hard limit and shares it between checks in flight and
/// the API's connections, beside the database pool and [`RESERVED_FILES`], so neither can take
/// the descriptors the other needs: a check that cannot open a socket would report DOWN.
pub(crate) fn share_open_files(
    db_max_connections: u32,
    checks: Option<usize>,
    connections: Option<usize>,
) -> FileShare {
    let wanted = FileShare {
        checks: checks.unwrap_or(0),
        connections: connections.unwrap_or(0),
    };
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            return wanted;
        }
    };
    let reserved = u64::from(db_max_connections) + RESERVED_FILES;
    let available = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    let share = split_files(available, wanted);
    if share != wanted {
        tracing::warn!(
            open_file_limit = limit,
            check_concurrency = share.checks,
            max_connections = share.connections,
            "CHECK_CONCURRENCY and MAX_CONNECTIONS lowered to fit the open-file limit; raise it (ulimit -n) to allow more"
        );
    }
    share
}

/// Shares `available` descriptors: everything wanted when it fits; else checks get what they
/// want within three quarters and connections the rest (at least a quarter, at least 16).
fn split_files(available: usize, wanted: FileShare) -> FileShare {
    if wanted.checks.saturating_add(wanted.connections) <= available {
        return wanted;
    }
    let floor = if wanted.connections == 0 {
        0
    } else {
        (available / 4).max(16)
    };
    let checks = wanted.checks.min(available.saturating_sub(floor));
    let connections = wanted.connections.min(available.saturating_sub(checks));
    FileShare {
        checks,
        connections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_files_are_shared_between_checks_and_connections_only_when_short() {
        let wanted = FileShare {
            checks: 1000,
            connections: 1024,
        };
        assert_eq!(split_files(100_000, wanted), wanted);
        // 1,024 files less the pool and the reserve: connections a quarter, checks the rest.
        let share = split_files(880, wanted);
        assert_eq!(
            share,
            FileShare {
                checks: 660,
                connections: 220
            }
        );
        assert_eq!(
            split_files(20, wanted),
            FileShare {
                checks: 4,
                connections: 16
            }
        );
        // Checks that want less leave the rest to connections.
        let few_checks = FileShare {
            checks: 200,
            connections: 1024,
        };
        assert_eq!(split_files(880, few_checks).connections, 680);
        let api_only = FileShare {
            checks: 0,
            connections: 1024,
        };
        assert_eq!(split_files(500, api_only).connections, 500);
    }
}
