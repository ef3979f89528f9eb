//! Time: CLOCK_MONOTONIC, the clock the kernel programs stamp events with
//! (`bpf_ktime_get_ns`), so userspace times compare with theirs; the offset that turns it
//! into wall-clock time; and how durations and instants are written for people.

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds, now: add it to a kernel
/// timestamp for a wall-clock time. Measure it once per session, so every journey (and a
/// replay of the session's recording) uses the same offset.
pub fn wall_offset_ns() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let offset = i128::try_from(wall).unwrap_or(0) - i128::from(monotonic_ns());
    i64::try_from(offset).unwrap_or(0)
}

/// This boot of the kernel, as the kernel names it: CLOCK_MONOTONIC restarts with each.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// `850 ns`, `12.4 µs`, `1.25 ms`, `2.00 s`.
pub fn format_duration(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// RFC 3339 UTC with microseconds, from Unix-epoch nanoseconds.
pub fn rfc3339(unix_ns: i128) -> String {
    let secs = i64::try_from(unix_ns.div_euclid(1_000_000_000)).unwrap_or(0);
    let micros = (unix_ns.rem_euclid(1_000_000_000) / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // Digits written by hand: `format!` with padding took 8 % of a replay (a time per
    // journey).
    let mut out = [0u8; 27];
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value.rem_euclid(10)) as u8;
            value /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 6, micros);
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = separator;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_795_678_245_123_456_000),
            "2026-11-26T07:30:45.123456Z"
        );
        // The time of day against the formatter's own padding at 400 instants 97 days apart;
        // the date at a leap day and past a century that is not a leap year.
        for unix_ns in (0..400).map(|i| i * 86_399_999_999_999i128 * 97 + 123_456_789_000) {
            let secs = unix_ns / 1_000_000_000;
            let micros = unix_ns % 1_000_000_000 / 1000;
            assert_eq!(rfc3339(unix_ns)[11..], {
                let rem = secs % 86_400;
                format!(
                    "{:02}:{:02}:{:02}.{micros:06}Z",
                    rem / 3600,
                    rem % 3600 / 60,
                    rem % 60
                )
            });
        }
        assert_eq!(
            rfc3339(951_825_600_000_000_000),
            "2000-02-29T12:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(4_107_542_400_000_000_000),
            "2100-03-01T00:00:00.000000Z"
        );
        assert_eq!(format_duration(1_500), "1.5 µs");
        assert_eq!(format_duration(999), "999 ns");
        assert_eq!(format_duration(2_000_000_000), "2.00 s");
    }
}
