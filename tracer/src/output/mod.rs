//! Where journeys go: `text` for people, `json` for scripts (one journey per line),
//! `summary` for just the closing summary. The TUI is a sink too and consumes the same
//! [`Journey`] values. Every sink ends with the same [`Summary`].

pub mod json;
pub mod summary;
pub mod text;
pub mod ui;

use std::io::{self, Write as _};

pub use summary::{FlowTotals, Summary};

use crate::{
    flows::FlowTable,
    journey::{counted::HopCounts, model::Journey},
    pipeline::{Correlated, Counters},
};

pub trait Sink {
    fn journey(&mut self, journey: &Journey) -> io::Result<()>;

    /// A journey with its raw observations; sinks that need the packets' headers (exports)
    /// override this, the others show the journey.
    fn correlated(&mut self, correlated: &Correlated) -> io::Result<()> {
        self.journey(&correlated.journey)
    }

    /// Called once at the end.
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;

    /// Pushes buffered output out; called after each batch of journeys.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Running totals of what the session skipped so far.
    fn counters(&mut self, _counters: &Counters) {}

    /// The flows this sink keeps (`--flows`), if any: what [`Sink::sampling`] and
    /// [`Sink::hop_counts`] feed unless the sink takes them itself.
    fn flow_table(&mut self) -> Option<&mut FlowTable> {
        None
    }

    /// The session traces one packet in `2^shift` and counts the rest (said before any
    /// journey).
    fn sampling(&mut self, shift: u8) {
        if let Some(flows) = self.flow_table() {
            flows.sampling(shift);
        }
    }

    /// A sampling session's counts of packets per place that changed (`journey::counted`),
    /// read at `at_ns` (the source's CLOCK_MONOTONIC, the timebase of journeys' starts; a
    /// sink that shows totals only at the end needs no time).
    fn hop_counts(&mut self, _at_ns: u64, counts: &HopCounts) {
        if let Some(flows) = self.flow_table() {
            flows.hop_counts(counts);
        }
    }

    /// Something the user must see now (e.g. the recording stopped).
    fn notice(&mut self, text: &str) {
        eprintln!("tracer: {text}");
    }

    /// Journeys this sink could not take (a live UI that fell behind).
    fn dropped(&self) -> u64 {
        0
    }
}

/// `--output summary`: journeys are counted, not shown; the summary goes to stdout — after
/// the flows and their paths with `--flows` (the shape that reads well during a flood).
#[derive(Default)]
pub struct SummarySink {
    flows: Option<FlowTable>,
}

impl SummarySink {
    /// Also print the flows and their paths (`--flows`).
    #[must_use]
    pub fn with_flows(flows: bool) -> Self {
        Self {
            flows: flows.then(FlowTable::default),
        }
    }
}

impl Sink for SummarySink {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        if let Some(flows) = &mut self.flows {
            flows.add(journey);
        }
        Ok(())
    }

    fn flow_table(&mut self) -> Option<&mut FlowTable> {
        self.flows.as_mut()
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        // Written, not printed: a closed pipe (`| head`) is an error to return, not a panic.
        let mut out = io::stdout().lock();
        if let Some(flows) = &self.flows {
            if summary.record_only {
                writeln!(
                    out,
                    "flows: none yet (a record-only session correlates later: `tracer replay --flows --output summary FILE`)"
                )?;
            } else {
                writeln!(out, "{}", flows.text())?;
            }
        }
        writeln!(out, "{}", summary.text())
    }
}
