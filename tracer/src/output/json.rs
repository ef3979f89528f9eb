//! `--output json`: one [`Journey`] per line (schema: docs/json-schema.md); with `--flows`,
//! one line per flow path (`{"flow_path": …}`, `crate::flows`); then one summary line
//! (`{"session_summary": …}`); the summary also goes to stderr for people.

use std::io::{self, BufWriter, Write};

use super::{Sink, Summary};
use crate::{flows::FlowTable, journey::model::Journey};

/// Buffered: lines go out in batches ([`Sink::flush`]), not one write per journey.
pub struct JsonSink<W: Write> {
    out: BufWriter<W>,
    flows: Option<FlowTable>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
            flows: None,
        }
    }

    /// Also print the flow paths at the end (`--flows`).
    #[must_use]
    pub fn with_flows(mut self, flows: bool) -> Self {
        self.flows = flows.then(FlowTable::default);
        self
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        if let Some(flows) = &mut self.flows {
            flows.add(journey);
        }
        serde_json::to_writer(&mut self.out, journey)?;
        self.out.write_all(b"\n")
    }

    fn flow_table(&mut self) -> Option<&mut FlowTable> {
        self.flows.as_mut()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        let mut summary = summary.clone();
        if let Some(flows) = &self.flows {
            summary.flows = Some(flows.totals());
            summary.notes.extend(flows.beyond_note());
            summary.notes.extend(flows.unattributed_note());
            #[derive(serde::Serialize)]
            struct Line<'a> {
                flow_path: crate::flows::FlowPathRecord<'a>,
            }
            for flow_path in flows.records() {
                serde_json::to_writer(&mut self.out, &Line { flow_path })?;
                self.out.write_all(b"\n")?;
            }
        }
        writeln!(self.out, "{}", summary.json())?;
        self.out.flush()?;
        eprintln!("{}", summary.text());
        Ok(())
    }
}
