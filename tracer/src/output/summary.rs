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
