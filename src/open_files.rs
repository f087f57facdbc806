//! The open-files limit: every connection, WebSocket, media socket, database file and upload
//! is a descriptor, and the soft limit a shell hands a process (often 1,024) is far below what
//! a server holds. At start the soft limit is raised to the hard one; the connection cap is
//! then kept below it, so running out of descriptors is a refused connection, not a failing
//! `accept` and a `/healthz` that no longer answers.

/// Descriptors kept free of HTTP connections: media sockets, the database, files being sent.
pub const RESERVED: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force (`None`
/// where it cannot be read).
pub fn raise() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        Some(lim.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap that fits under `limit` descriptors, keeping [`RESERVED`] free.
pub fn connection_cap(configured: usize, limit: Option<u64>) -> usize {
    match limit {
        Some(l) => {
            let room = usize::try_from(l.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
            configured.min(room.max(1))
        }
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(10_000, Some(1_024)), 512);
        assert_eq!(connection_cap(10_000, Some(1 << 20)), 10_000);
        assert_eq!(connection_cap(10_000, Some(100)), 1);
        assert_eq!(connection_cap(10_000, None), 10_000);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let now = raise().expect("readable on unix");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((now, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
    }
}
