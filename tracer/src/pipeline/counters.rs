//! Everything a session skipped, dropped, evicted or could not read, from every stage, so
//! that none of it is silent: each summary (text, JSON, the UI header) shows every counter
//! that is not zero, and a recording keeps the source's.

use serde::{Deserialize, Serialize};

/// What a source could not hand over: running totals since it started. A recording keeps
/// the newest of these (a replay shows the recording session's losses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounters {
    /// Events the kernel programs could not write: the ring buffer was full.
    pub ringbuf_full: u64,
    /// Of those, drops and hops of ICMP errors: their own ring buffer was full, which only
    /// a flood of them can do (`tracer_common::maps::FAILURES`). `None` where it is not
    /// known: recordings made before that ring existed, whose drops shared the one ring.
    #[serde(default)]
    pub failures_lost: Option<u64>,
    /// Followed packets whose headers the kernel programs could not parse.
    pub parse_failed: u64,
    /// Ring-buffer records that did not decode (a kernel object from another build).
    #[serde(default)]
    pub undecodable: u64,
    /// Drop events in network namespaces outside the traced ones (another network that
    /// happens to use the same addresses), left out.
    #[serde(default)]
    pub foreign_drops: u64,
    /// Observation batches the recorder could not keep up with (a live session never
    /// waits for the disk).
    #[serde(default, alias = "recorder_dropped")]
    pub unrecorded_batches: u64,
    /// Sampling sessions: hook crossings of followed packets the kernel could not count
    /// (inserting into its table of hops failed). Absent when 0 (every session that does
    /// not sample).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncounted: u64,
    /// Sampling sessions: hook crossings the kernel counted in an entry of its table of
    /// hops that the table evicted before they were read (`KernelTotals::evicted_unread`).
    /// Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub evicted_unread: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Two sources' totals as one (per-node recordings stitched). Drops and ICMP errors lost are
/// known only when both know them.
impl std::ops::Add for SourceCounters {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            ringbuf_full: self.ringbuf_full + other.ringbuf_full,
            failures_lost: self
                .failures_lost
                .zip(other.failures_lost)
                .map(|(a, b)| a + b),
            parse_failed: self.parse_failed + other.parse_failed,
            undecodable: self.undecodable + other.undecodable,
            foreign_drops: self.foreign_drops + other.foreign_drops,
            unrecorded_batches: self.unrecorded_batches + other.unrecorded_batches,
            uncounted: self.uncounted + other.uncounted,
            evicted_unread: self.evicted_unread + other.evicted_unread,
        }
    }
}

/// What correlation and presentation skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Observations correlated.
    pub observations: u64,
    /// Packets closed early because too many were open at once (their later hops, if any,
    /// start journeys of their own).
    pub evicted: u64,
    /// Journeys not shown because they do not match `--port`/`--proto`.
    pub filtered: u64,
    /// Drop events that were not a packet's fate and had no journey to join: a copy of a
    /// packet discarded by a socket that did not want it, or a packet a socket discarded
    /// long after it was delivered (see `journey::fate`).
    pub late_discards: u64,
    /// Journeys a live UI could not take because it fell behind.
    pub ui_dropped: u64,
}

/// What a recording's reader skipped (replay only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCounters {
    /// Damaged stretches skipped: the reader found the next intact record after each.
    pub damaged: u64,
    /// Bytes in those stretches.
    pub damaged_bytes: u64,
    /// Records of a kind this version does not know (written by a newer tracer).
    pub unknown_records: u64,
}

impl std::ops::Add for ReadCounters {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            damaged: self.damaged + other.damaged,
            damaged_bytes: self.damaged_bytes + other.damaged_bytes,
            unknown_records: self.unknown_records + other.unknown_records,
        }
    }
}

/// Every counter of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub source: SourceCounters,
    pub pipeline: PipelineCounters,
    pub read: ReadCounters,
}

impl Counters {
    /// One clause per counter that is not zero, for people: "events lost in the kernel: 12
    /// (ring buffer full)", … Empty when nothing was skipped.
    pub fn clauses(&self) -> Vec<String> {
        let s = &self.source;
        let p = &self.pipeline;
        let r = &self.read;
        fn say(out: &mut Vec<String>, n: u64, what: &str) {
            if n > 0 {
                out.push(format!("{what}: {n}"));
            }
        }
        let mut out = Vec::new();
        say(
            &mut out,
            s.ringbuf_full,
            "events lost in the kernel (ring buffer full)",
        );
        match s.failures_lost {
            // The one thing a user under a flood must know: whether a drop can be missing.
            Some(0) if s.ringbuf_full > 0 => {
                out.push("hops only: every drop and ICMP error arrived".to_owned());
            }
            Some(n) => say(&mut out, n, "of them drops or ICMP errors"),
            None => {}
        }
        say(
            &mut out,
            s.parse_failed,
            "packets the kernel could not parse",
        );
        say(
            &mut out,
            s.undecodable,
            "kernel records that did not decode",
        );
        say(
            &mut out,
            s.foreign_drops,
            "drops in untraced namespaces left out",
        );
        say(
            &mut out,
            s.unrecorded_batches,
            "observation batches not recorded (disk too slow)",
        );
        say(
            &mut out,
            s.uncounted,
            "hook crossings not counted (the kernel's table of hops refused them)",
        );
        say(
            &mut out,
            s.evicted_unread,
            "hook crossings counted but not read (the kernel's table of hops evicted them first)",
        );
        say(&mut out, p.evicted, "packets closed early (too many open)");
        say(&mut out, p.filtered, "journeys not matching --port/--proto");
        say(
            &mut out,
            p.late_discards,
            "copies or delivered packets discarded later by sockets (not drops)",
        );
        say(&mut out, p.ui_dropped, "journeys the UI fell behind on");
        say(
            &mut out,
            r.damaged,
            "damaged stretches of the recording skipped",
        );
        say(&mut out, r.damaged_bytes, "damaged bytes skipped");
        say(
            &mut out,
            r.unknown_records,
            "records of an unknown kind skipped",
        );
        out
    }

    /// The compact form for the UI header: "lost 12 · unparsable 3 · evicted 2"; empty when
    /// nothing was skipped.
    pub fn compact(&self) -> String {
        let s = &self.source;
        let p = &self.pipeline;
        let r = &self.read;
        let mut parts: Vec<String> = [
            (s.ringbuf_full, "lost"),
            (s.failures_lost.unwrap_or(0), "failures lost"),
            (s.parse_failed, "unparsable"),
            (s.undecodable, "undecodable"),
            (s.foreign_drops, "foreign drops"),
            (s.unrecorded_batches, "unrecorded batches"),
            (s.uncounted, "uncounted"),
            (s.evicted_unread, "evicted unread"),
            (p.evicted, "evicted"),
            (p.filtered, "filtered"),
            (p.late_discards, "socket discards"),
            (p.ui_dropped, "UI behind"),
            (r.damaged, "damaged"),
            (r.unknown_records, "unknown records"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{what} {n}"))
        .collect();
        // Under a flood the header must say whether a drop can be missing ("lost" is first).
        if s.ringbuf_full > 0 && s.failures_lost == Some(0) {
            parts[0].push_str(" (hops only)");
        }
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each counter, set alone, appears in both the sentence and the compact form, and
    /// nothing is said when all are zero.
    #[test]
    fn every_counter_is_said_when_not_zero() {
        assert!(Counters::default().clauses().is_empty());
        assert!(Counters::default().compact().is_empty());
        type Setter = fn(&mut Counters);
        let setters: Vec<(&str, Setter)> = vec![
            ("ring buffer full", |c| c.source.ringbuf_full = 7),
            ("drops or ICMP errors", |c| c.source.failures_lost = Some(7)),
            ("could not parse", |c| c.source.parse_failed = 7),
            ("did not decode", |c| c.source.undecodable = 7),
            ("untraced namespaces", |c| c.source.foreign_drops = 7),
            ("not recorded", |c| c.source.unrecorded_batches = 7),
            ("hook crossings not counted", |c| c.source.uncounted = 7),
            ("counted but not read", |c| c.source.evicted_unread = 7),
            ("closed early", |c| c.pipeline.evicted = 7),
            ("--port/--proto", |c| c.pipeline.filtered = 7),
            ("discarded later by sockets", |c| {
                c.pipeline.late_discards = 7
            }),
            ("UI fell behind", |c| c.pipeline.ui_dropped = 7),
            ("damaged stretches", |c| c.read.damaged = 7),
            ("damaged bytes", |c| c.read.damaged_bytes = 7),
            ("unknown kind", |c| c.read.unknown_records = 7),
        ];
        for (words, set) in setters {
            let mut counters = Counters::default();
            set(&mut counters);
            let clauses = counters.clauses();
            assert_eq!(clauses.len(), 1, "{words}: {clauses:?}");
            assert!(
                clauses[0].contains(words) && clauses[0].ends_with(": 7"),
                "{words}: {clauses:?}"
            );
            if words != "damaged bytes" {
                assert!(counters.compact().ends_with(" 7"), "{words}");
            }
        }
    }

    /// Hops lost under a flood: the summary says whether any drop can be missing — that none
    /// is when the kernel counted none, nothing when it is not known (an older recording).
    #[test]
    fn lost_hops_say_whether_drops_were_kept() {
        let mut counters = Counters::default();
        counters.source.ringbuf_full = 12;
        assert_eq!(
            counters.clauses(),
            ["events lost in the kernel (ring buffer full): 12"]
        );
        counters.source.failures_lost = Some(0);
        assert_eq!(
            counters.clauses(),
            [
                "events lost in the kernel (ring buffer full): 12",
                "hops only: every drop and ICMP error arrived"
            ]
        );
        assert_eq!(counters.compact(), "lost 12 (hops only)");
        counters.source.failures_lost = Some(3);
        assert_eq!(counters.clauses()[1], "of them drops or ICMP errors: 3");
        assert_eq!(counters.compact(), "lost 12 · failures lost 3");
        counters.source.ringbuf_full = 0;
        counters.source.failures_lost = Some(0);
        assert!(counters.clauses().is_empty(), "nothing lost, nothing said");
    }
}
