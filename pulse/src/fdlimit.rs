//! The open-files limit. A spike of N proxied connections costs pulse N
//! client sockets, plus N more when it also runs the destination sink, so
//! the soft limit is raised to the hard one at start and a run that cannot
//! fit is refused up front rather than failing halfway with EMFILE.

use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Descriptors kept back for the runtime, stdio, /proc reads and listeners.
pub const RESERVE: u64 = 64;

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        Ok(lim)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the result.
pub fn raise() -> io::Result<FdLimit> {
    let mut lim = get()?;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        // An unlimited hard limit is still capped by fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: `lim` is a valid rlimit; the kernel only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(FdLimit {
        soft: now.rlim_cur,
        hard: now.rlim_max,
    })
}

/// Descriptors this process has open right now (Linux).
pub fn open_now() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    u64::try_from(n).ok()
}

/// Checks that `needed` more descriptors fit; the error says what to do,
/// with `hint` as one more way out.
pub fn check(
    needed: u64,
    in_use: u64,
    limit: FdLimit,
    what: &str,
    hint: &str,
) -> Result<(), String> {
    let total = needed + in_use + RESERVE;
    if total <= limit.soft {
        return Ok(());
    }
    Err(format!(
        "this run needs about {total} open files ({what}; {in_use} already open, {RESERVE} reserve) \
         but the limit is {} (hard {}). Use fewer connections or raise the hard limit \
         (ulimit -Hn){hint}",
        limit.soft, limit.hard
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_reaches_hard_limit() {
        let l = raise().unwrap();
        assert!(l.soft == l.hard || l.hard == libc::RLIM_INFINITY);
        assert!(open_now().unwrap() > 0);
    }

    #[test]
    fn check_explains_the_shortfall() {
        let limit = FdLimit {
            soft: 20000,
            hard: 20000,
        };
        assert!(check(18000, 10, limit, "2 x 9000", "").is_ok());
        let err = check(19990, 10, limit, "2 x 9995", ", or try `pulse sink`").unwrap_err();
        assert!(err.contains("20064") && err.contains("pulse sink"), "{err}");
    }
}
