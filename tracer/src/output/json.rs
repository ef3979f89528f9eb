//! `--output json`: one [`Journey`] per line (schema: docs/json-schema.md), then one
//! summary line (`{"session_summary": …}`); the summary also goes to stderr for people.

use std::io::{self, BufWriter, Write};

use super::{Sink, Summary};
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

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        writeln!(self.out, "{}", summary.json())?;
        self.out.flush()?;
        eprintln!("{}", summary.text());
        Ok(())
    }
}
