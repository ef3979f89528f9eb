//! Where journeys go: `text` for people, `json` for scripts (one journey per line),
//! `summary` for just the closing summary. The TUI is a sink too and consumes the same
//! [`Journey`] values. Every sink ends with the same [`Summary`].

pub mod json;
pub mod summary;
pub mod text;
pub mod ui;

use std::io;

pub use summary::Summary;

use crate::{
    journey::model::Journey,
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

    /// Something the user must see now (e.g. the recording stopped).
    fn notice(&mut self, text: &str) {
        eprintln!("tracer: {text}");
    }

    /// Journeys this sink could not take (a live UI that fell behind).
    fn dropped(&self) -> u64 {
        0
    }
}

/// `--output summary`: journeys are counted, not shown; the summary goes to stdout.
pub struct SummarySink;

impl Sink for SummarySink {
    fn journey(&mut self, _journey: &Journey) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        println!("{}", summary.text());
        Ok(())
    }
}
