//! `--output json`: one [`Journey`] per line (schema: docs/json-schema.md); the run's
//! summary goes to stderr so stdout stays pure JSON Lines.

use std::io::{self, BufWriter, Write};

use super::Sink;
use crate::journey::model::Journey;

/// Buffered: lines go out in batches ([`Sink::flush`]), not one write per journey.
pub struct JsonSink<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
        }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, journey)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, summary: &str) -> io::Result<()> {
        self.out.flush()?;
        eprintln!("{summary}");
        Ok(())
    }
}
