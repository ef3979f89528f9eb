//! Where journeys go: `text` for people, `json` for scripts (one journey per line),
//! `summary` for just the closing line. The TUI is a sink too and consumes the same
//! [`Journey`] values.

pub mod json;
pub mod text;
pub mod ui;

use std::io;

use crate::journey::model::Journey;

pub trait Sink {
    fn journey(&mut self, journey: &Journey) -> io::Result<()>;
    /// Called once at the end with a summary line for people (ignored by machine formats
    /// on stdout; they print it to stderr).
    fn finish(&mut self, summary: &str) -> io::Result<()>;

    /// Pushes buffered output out; called after each batch of journeys.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Running totals of events the kernel could not hand over.
    fn loss(&mut self, _ringbuf_full: u64, _parse_failed: u64) {}

    /// Something the user must see now (e.g. the recording stopped).
    fn notice(&mut self, text: &str) {
        eprintln!("tracer: {text}");
    }
}

/// `--output summary`: journeys are counted by the caller, not shown; the closing line
/// goes to stdout.
pub struct SummarySink;

impl Sink for SummarySink {
    fn journey(&mut self, _journey: &Journey) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, summary: &str) -> io::Result<()> {
        println!("{summary}");
        Ok(())
    }
}
