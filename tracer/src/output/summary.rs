//! How a session ended, said the same way by every sink: the journeys by verdict, every
//! counter of what was skipped ([`Counters`]), and notes (the recording's fate, names that
//! may be stale, where a recording was cut). Text for people; one JSON line for scripts.

use serde::Serialize;

use crate::pipeline::{Counters, Tally};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub journeys: Tally,
    /// Observations correlated; in a record-only session, observations recorded for a
    /// later `tracer replay` instead.
    pub observations: u64,
    /// The session recorded without correlating (`--output summary --record`).
    pub record_only: bool,
    pub counters: Counters,
    /// Anything else the user must know, one sentence each.
    pub notes: Vec<String>,
    /// Something went wrong that makes the session's result incomplete (the recording
    /// failed, a recording could not be read at all): the exit status is not 0.
    pub failed: bool,
    /// With `--flows`: the size of the flow table, and what it could not keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<FlowTotals>,
    /// Recordings of several machines stitched: each machine's clock against the first's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clocks: Vec<crate::replay::merge::clocks::ClockEstimate>,
    /// Recordings stitched: each one's own losses and whether it ended cleanly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::replay::merge::SourceHealth>,
}

/// The flow table's size at the end (`crate::flows::FlowTable`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowTotals {
    pub flows: usize,
    pub paths: usize,
    /// Journeys on paths past the table's bound, counted on none.
    pub journeys_not_kept: u64,
}

impl Summary {
    /// First line: journeys and kernel loss (always, even when 0), then every other counter
    /// that is not zero; then each note on a line of its own.
    pub fn text(&self) -> String {
        let t = &self.journeys;
        let mut head = if self.record_only {
            format!(
                "{} observations recorded (see the journeys with `tracer replay`)",
                self.observations
            )
        } else {
            format!(
                "{} journeys: {} delivered, {} dropped, {} incomplete (from {} observations)",
                t.total(),
                t.delivered,
                t.dropped,
                t.incomplete,
                self.observations
            )
        };
        head.push_str(&format!(
            "; events lost in the kernel: {}",
            self.counters.source.ringbuf_full
        ));
        for clause in self.counters.clauses() {
            if !clause.starts_with("events lost in the kernel") {
                head.push_str("; ");
                head.push_str(&clause);
            }
        }
        for note in &self.notes {
            head.push('\n');
            head.push_str(note);
        }
        head
    }

    /// `{"session_summary": {…}}`: one line, told from a journey by its only key.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            session_summary: &'a Summary,
        }
        serde_json::to_string(&Line {
            session_summary: self,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter reaches the JSON line under its name, zero or not, and the text says
    /// each one that is not zero (the clauses themselves are tested in `pipeline::counters`).
    #[test]
    fn the_json_line_carries_every_counter_and_the_text_the_ones_that_happened() {
        let mut summary = Summary::default();
        summary.counters.pipeline.evicted = 3;
        summary.counters.read.damaged = 1;
        let json: serde_json::Value = serde_json::from_str(&summary.json()).unwrap();
        let counters = &json["session_summary"]["counters"];
        for (section, names) in [
            (
                "source",
                &[
                    "ringbuf_full",
                    "failures_lost",
                    "parse_failed",
                    "undecodable",
                    "foreign_drops",
                    "unrecorded_batches",
                ][..],
            ),
            (
                "pipeline",
                &[
                    "observations",
                    "evicted",
                    "filtered",
                    "late_discards",
                    "ui_dropped",
                ][..],
            ),
            ("read", &["damaged", "damaged_bytes", "unknown_records"][..]),
        ] {
            for name in names {
                // Not known is `null`, not 0 (`failures_lost` of an older recording).
                let known_or_not = counters[section][name].is_u64()
                    || (*name == "failures_lost" && counters[section][name].is_null());
                assert!(known_or_not, "{section}.{name} in {json}");
            }
        }
        assert_eq!(counters["pipeline"]["evicted"], 3);
        let text = summary.text();
        assert!(text.starts_with("0 journeys: 0 delivered"), "{text}");
        assert!(text.contains("events lost in the kernel: 0"), "{text}");
        assert!(
            text.contains("packets closed early (too many open): 3"),
            "{text}"
        );
        assert!(
            text.contains("damaged stretches of the recording skipped: 1"),
            "{text}"
        );
        assert!(!text.contains("filtered"), "only what happened: {text}");
    }
}
