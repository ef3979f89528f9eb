//! `--output json`: one [`Journey`] per line (schema: docs/json-schema.md); the run's
//! summary goes to stderr so stdout stays pure JSON Lines.

use std::io::{self, Write};

use super::Sink;
use crate::journey::model::Journey;

pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, journey)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    fn finish(&mut self, summary: &str) -> io::Result<()> {
        eprintln!("{summary}");
        Ok(())
    }
}
