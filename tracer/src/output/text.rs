//! `--output text`: one compact block per journey — a header line, one line per hop
//! (time offset, node, what happened, names), and the diagnosis; with `--flows`, the flows
//! and their distinct paths (`crate::flows`) before the summary.

use std::io::{self, BufWriter, Write};

use super::{Sink, Summary};
use crate::{
    clock::format_duration,
    flows::FlowTable,
    journey::model::{Hop, Journey, Verdict},
};

/// Buffered: lines go out in batches ([`Sink::flush`]), not one write per journey.
pub struct TextSink<W: Write> {
    out: BufWriter<W>,
    flows: Option<FlowTable>,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
            flows: None,
        }
    }

    /// Also print the flows and their paths at the end (`--flows`).
    #[must_use]
    pub fn with_flows(mut self, flows: bool) -> Self {
        self.flows = flows.then(FlowTable::default);
        self
    }
}

fn endpoint_label(name: &crate::journey::model::Named, port: u16) -> String {
    let ip = name.ip.map(|i| i.to_string()).unwrap_or_default();
    let addr = if port == 0 {
        ip
    } else {
        format!("{ip}:{port}")
    };
    let label = name.label();
    if label == name.ip.map(|i| i.to_string()).unwrap_or_default() {
        addr
    } else {
        format!("{label} {addr}")
    }
}

pub fn render(journey: &Journey) -> String {
    let mut out = String::new();
    let verdict = match journey.verdict {
        Verdict::Delivered => "delivered",
        Verdict::Dropped => "DROPPED",
        Verdict::Incomplete => "incomplete",
    };
    out.push_str(&format!(
        "#{} {} {} {} → {}  [{}] {} · {} hops · {}\n",
        journey.id,
        journey.protocol,
        journey.summary,
        endpoint_label(&journey.from, journey.original.sport),
        endpoint_label(&journey.to, journey.original.dport),
        format!("{:?}", journey.direction).to_lowercase(),
        verdict,
        journey.hops.iter().filter(|h| h.observed).count(),
        format_duration(journey.duration_ns),
    ));
    for hop in &journey.hops {
        out.push_str(&hop_line(hop));
    }
    out.push_str(&format!("  ⇒ {}\n", journey.diagnosis));
    out
}

fn hop_line(hop: &Hop) -> String {
    let mark = if hop.observed { ' ' } else { '~' };
    format!(
        "  {mark}{:>10}  {:<6} {:<13} {}\n",
        format!("+{}", format_duration(hop.t_ns)),
        hop.node.as_deref().unwrap_or("-"),
        hop.kind.label(),
        hop.note
    )
}

impl<W: Write> Sink for TextSink<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        if let Some(flows) = &mut self.flows {
            flows.add(journey);
        }
        self.out.write_all(render(journey).as_bytes())?;
        self.out.write_all(b"\n")
    }

    fn flow_table(&mut self) -> Option<&mut FlowTable> {
        self.flows.as_mut()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        if let Some(flows) = &self.flows {
            writeln!(self.out, "{}", flows.text())?;
        }
        writeln!(self.out, "{}", summary.text())?;
        self.out.flush()
    }
}
