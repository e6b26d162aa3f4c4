//! The open-file limit (`RLIMIT_NOFILE`): a master with thousands of
//! minions holds a socket per minion (two on ZeroMQ), far above the usual
//! soft limit of 1024. Raising the soft limit up to the hard one needs no
//! privilege; raising the hard one needs `CAP_SYS_RESOURCE` (root).

/// Why the limit could not be raised far enough.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RlimitError {
    #[error(
        "{need} open files are needed, but the hard limit is {hard} and it cannot be raised \
         here: run `ulimit -n {need}` first (as root, or raise the hard limit for this user)"
    )]
    TooLow { need: u64, hard: u64 },
    #[error("reading or setting RLIMIT_NOFILE: {0}")]
    Os(std::io::Error),
}

/// Raises the soft limit on open files to the hard limit, and beyond it to
/// `need` when the hard limit is lower and the process may raise it.
/// Returns the soft limit now in force (`u64::MAX`: unlimited).
/// `need = 0`: soft → hard only.
#[cfg(unix)]
pub fn raise_open_files(need: u64) -> Result<u64, RlimitError> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let (soft, hard) = (
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    );
    let want = hard.max(need);
    if soft >= want {
        return Ok(soft);
    }
    let set = |to: u64| {
        let limit = (to != u64::MAX).then_some(to);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit,
                maximum: limit,
            },
        )
    };
    if set(want).is_ok() {
        return Ok(want);
    }
    // Not allowed to raise the hard limit: go as far as it allows.
    if soft < hard {
        set(hard).map_err(|e| RlimitError::Os(e.into()))?;
    }
    if hard < need {
        return Err(RlimitError::TooLow { need, hard });
    }
    Ok(hard)
}

/// Elsewhere there is nothing to raise.
#[cfg(not(unix))]
pub fn raise_open_files(_need: u64) -> Result<u64, RlimitError> {
    Ok(u64::MAX)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rustix::process::{getrlimit, Resource};

    #[test]
    fn soft_reaches_the_hard_limit() {
        let soft = raise_open_files(0).unwrap();
        let lim = getrlimit(Resource::Nofile);
        assert_eq!(Some(soft), lim.current.or(Some(u64::MAX)));
        assert_eq!(lim.current, lim.maximum);
    }
}
