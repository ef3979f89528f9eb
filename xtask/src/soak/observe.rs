//! What the soak reads from a running tracer: memory and CPU time, the BPF programs and
//! links it holds, and the UI's header.

use std::{
    collections::BTreeSet,
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// Memory and CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub(super) rss_kib: u64,
    pub(super) hwm_kib: u64,
    pub(super) cpu_ticks: u64,
}

pub(super) fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if status
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("zombie") || l.contains("dead")))
    {
        return None;
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| rest.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu_ticks: ticks(14)? + ticks(15)?,
    })
}

/// The BPF programs and links a process holds, from its fdinfo.
pub(super) fn bpf_objects(pid: u32) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut programs, mut links) = (BTreeSet::new(), BTreeSet::new());
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (programs, links);
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for line in info.lines() {
            let mut words = line.split_whitespace();
            let id = |w: Option<&str>| w.and_then(|v| v.parse::<u32>().ok());
            match words.next() {
                Some("prog_id:") => programs.extend(id(words.next())),
                Some("link_id:") => links.extend(id(words.next())),
                _ => {}
            }
        }
    }
    (programs, links)
}

/// Those of `programs` and `links` that still exist, waiting up to 5 s (the kernel frees
/// them asynchronously after the last fd closes).
pub(super) fn remaining(programs: &BTreeSet<u32>, links: &BTreeSet<u32>) -> Vec<String> {
    let exists = |kind: &str, id: u32| {
        Command::new("bpftool")
            .args([kind, "show", "id", &id.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = links
            .iter()
            .filter(|&&id| exists("link", id))
            .map(|id| format!("link {id}"))
            .chain(
                programs
                    .iter()
                    .filter(|&&id| exists("prog", id))
                    .map(|id| format!("program {id}")),
            )
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// What the UI's header says.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Header {
    pub(super) live: bool,
    pub(super) journeys: Option<u64>,
    /// Journeys by verdict: delivered, dropped, incomplete.
    pub(super) verdicts: [u64; 3],
    pub(super) lost: Option<u64>,
    pub(super) retention: Option<u64>,
    pub(super) let_go: u64,
}

pub(super) fn parse_header(screen: &str) -> Header {
    // " LIVE  Pod default/nettest … → Service default/nginx-test …"
    // "68837 journeys (382.0/s) ✓68257 ✗673 ?0  lost 0"
    // "keeping last 10000 (58837 older let go)  source Kubernetes API …"
    let number = |word: &str| {
        word.trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()
    };
    let stats = screen.lines().find(|l| l.contains(" journeys ("));
    let words: Vec<&str> = stats.map_or(Vec::new(), |l| l.split_whitespace().collect());
    let tagged = |tag: char| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(tag))
            .and_then(number)
            .unwrap_or(0)
    };
    let after = |needle: &str| {
        screen
            .split(needle)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(number)
    };
    Header {
        live: screen.lines().next().is_some_and(|l| l.contains("LIVE")),
        journeys: words.first().copied().and_then(number),
        verdicts: [tagged('✓'), tagged('✗'), tagged('?')],
        lost: words
            .iter()
            .position(|&w| w == "lost")
            .and_then(|i| words.get(i + 1).copied())
            .and_then(number),
        retention: after("keeping last "),
        let_go: screen
            .lines()
            .find(|l| l.contains(" older let go"))
            .and_then(|l| l.split(" older let go").next())
            .and_then(|before| before.rsplit('(').next())
            .and_then(number)
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_live_header() {
        let screen = " LIVE  Pod default/nettest (10.244.102.137, node cpu2) → Service default/nginx-test\n\
68837 journeys (382.0/s) ✓68257 ✗673 ?7  lost 12 (12 ring buffer full, 0 unreadable)\n\
keeping last 10000 (58837 older let go)  source Kubernetes API http://127.0.0.1:40991\n";
        let header = parse_header(screen);
        assert!(header.live);
        assert_eq!(header.journeys, Some(68_837));
        assert_eq!(header.verdicts, [68_257, 673, 7]);
        assert_eq!(header.lost, Some(12));
        assert_eq!(header.retention, Some(10_000));
        assert_eq!(header.let_go, 58_837);

        let fresh = parse_header(
            " LIVE  x\n0 journeys (0.0/s) ✓0 ✗0 ?0  lost 0\nkeeping last 10000  source y\n",
        );
        assert_eq!((fresh.journeys, fresh.let_go), (Some(0), 0));
        assert!(!parse_header("following Pod …\n").live);
        assert_eq!(parse_header("$ \n").journeys, None);
    }
}
