//! `/proc/PID/status` (VmRSS, RssAnon) and `/proc/PID/smaps_rollup` (Rss,
//! Anonymous). smaps_rollup is exact where status can lag behind (the
//! kernel batches its per-thread RSS counters), so it wins when readable;
//! status is the fallback for old kernels or missing permission.

use std::collections::BTreeMap;

use super::Reading;

/// The value of a `Name:   1234 kB` line, in bytes. A line without the
/// `kB` unit is a count, not a size (`Threads:  3`), and gives `None`.
pub fn parse_kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match (parts.next(), parts.next()) {
            (Some("kB"), None) => value.checked_mul(1024),
            _ => None,
        }
    })
}

/// Builds a reading from the two files' text; `smaps` may be absent.
pub fn reading_from_proc(status: &str, smaps: Option<&str>) -> Result<Reading, String> {
    let mut detail = BTreeMap::new();
    let vm_rss = parse_kib_field(status, "VmRSS");
    let rss_anon = parse_kib_field(status, "RssAnon");
    let smaps_rss = smaps.and_then(|s| parse_kib_field(s, "Rss"));
    let smaps_anon = smaps.and_then(|s| parse_kib_field(s, "Anonymous"));
    for (k, v) in [
        ("status_vm_rss", vm_rss),
        ("status_rss_anon", rss_anon),
        ("smaps_rss", smaps_rss),
        ("smaps_anonymous", smaps_anon),
    ] {
        if let Some(v) = v {
            detail.insert(k.to_string(), v);
        }
    }
    let rss_bytes = smaps_rss
        .or(vm_rss)
        .ok_or("no VmRSS in status (a zombie or kernel thread?)")?;
    Ok(Reading {
        rss_bytes,
        rss_anon_bytes: smaps_anon.or(rss_anon),
        detail,
    })
}

pub fn read_pid(pid: u32) -> Result<Reading, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok();
    reading_from_proc(&status, smaps.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tebbsocks\nUmask:\t0022\nState:\tS (sleeping)\n\
VmPeak:\t  123456 kB\nVmRSS:\t    8192 kB\nRssAnon:\t    5120 kB\n\
RssFile:\t    3072 kB\nRssShmem:\t       0 kB\nThreads:\t3\n";

    const SMAPS: &str = "55d0c0000000-7ffd00000000 ---p 00000000 00:00 0    [rollup]\n\
Rss:                8200 kB\nPss:                7000 kB\nPss_Anon:           5000 kB\n\
Anonymous:          5124 kB\nLazyFree:              0 kB\nAnonHugePages:         0 kB\n";

    #[test]
    fn parses_fields_in_kib() {
        assert_eq!(parse_kib_field(STATUS, "VmRSS"), Some(8192 * 1024));
        assert_eq!(parse_kib_field(STATUS, "RssAnon"), Some(5120 * 1024));
        // A count, not a size: no unit, so no reading.
        assert_eq!(parse_kib_field(STATUS, "Threads"), None);
        assert_eq!(parse_kib_field(STATUS, "VmSwap"), None);
        // "Rss" must not match "RssAnon" or "Pss_Anon" lines.
        assert_eq!(parse_kib_field(SMAPS, "Rss"), Some(8200 * 1024));
        assert_eq!(parse_kib_field(SMAPS, "Anonymous"), Some(5124 * 1024));
    }

    #[test]
    fn smaps_wins_and_status_is_the_fallback() {
        let r = reading_from_proc(STATUS, Some(SMAPS)).unwrap();
        assert_eq!(r.rss_bytes, 8200 * 1024);
        assert_eq!(r.rss_anon_bytes, Some(5124 * 1024));
        assert_eq!(r.detail["status_vm_rss"], 8192 * 1024);
        assert_eq!(r.detail.len(), 4);

        let r = reading_from_proc(STATUS, None).unwrap();
        assert_eq!(r.rss_bytes, 8192 * 1024);
        assert_eq!(r.rss_anon_bytes, Some(5120 * 1024));

        assert!(reading_from_proc("Name:\tkthreadd\n", None).is_err());
    }

    #[test]
    fn reads_own_process() {
        let r = read_pid(std::process::id()).unwrap();
        assert!(r.rss_bytes > 0);
        assert!(read_pid(u32::MAX).is_err());
    }
}
