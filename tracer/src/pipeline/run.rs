//! The pipeline's driver: inputs in, journeys out to a sink, counted, until the source ends
//! or the user's journey limit is reached. Live sessions and replays both run through
//! [`Pipeline::feed`].

use std::io;

use serde::Serialize;

use super::{
    correlator::{Correlated, Correlator},
    counters::{Counters, ReadCounters, SourceCounters},
    input::Input,
};
use crate::{
    journey::{counted::HopCounts, model::Verdict},
    output::Sink,
};

/// Journeys by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub delivered: u64,
    pub dropped: u64,
    pub incomplete: u64,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Delivered => self.delivered += 1,
            Verdict::Dropped => self.dropped += 1,
            Verdict::Incomplete => self.incomplete += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.delivered + self.dropped + self.incomplete
    }
}

/// Whether to go on feeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The journey limit was reached: the session is over.
    Stop,
}

pub struct Pipeline<'s> {
    correlator: Correlator,
    sink: &'s mut dyn Sink,
    limit: Option<u64>,
    tally: Tally,
    source: SourceCounters,
    read: ReadCounters,
    done: Vec<Correlated>,
}

impl<'s> Pipeline<'s> {
    /// `limit`: stop after this many journeys (`--count`).
    pub fn new(sink: &'s mut dyn Sink, limit: Option<u64>) -> Self {
        Self {
            correlator: Correlator::new(),
            sink,
            limit,
            tally: Tally::default(),
            source: SourceCounters::default(),
            read: ReadCounters::default(),
            done: Vec::new(),
        }
    }

    /// Takes one input from the source; journeys it completes go to the sink.
    pub fn feed(&mut self, input: Input) -> io::Result<Flow> {
        match &input {
            Input::Notice { text, .. } => self.sink.notice(text),
            Input::HopCounts { at_ns, counts } => {
                let filter = self.correlator.session().filter;
                if filter.is_empty() {
                    self.sink.hop_counts(*at_ns, counts);
                } else {
                    let mut shown = HopCounts::clone(counts);
                    shown
                        .hops
                        .retain(|(place, _)| filter.wants_tuple(&place.tuple));
                    self.sink.hop_counts(*at_ns, &shown);
                }
            }
            Input::Session(session) if session.sample_shift > 0 => {
                self.sink.sampling(session.sample_shift);
            }
            Input::Counters(counters) => {
                self.source = *counters;
                let all = self.counters();
                self.sink.counters(&all);
            }
            _ => {}
        }
        self.correlator.apply(input, &mut self.done);
        self.deliver()
    }

    /// The source has ended: every packet still open is explained as it stands.
    pub fn finish(&mut self) -> io::Result<Flow> {
        self.correlator.finish(&mut self.done);
        self.deliver()
    }

    /// What the reader of a recording skipped (replay).
    pub fn set_read_counters(&mut self, read: ReadCounters) {
        self.read = read;
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// For the summary of a session that sampled: what its journeys are a sample of.
    pub fn sampling_note(&self) -> Option<String> {
        let shift = self.correlator.session().sample_shift;
        (shift > 0).then(|| {
            format!(
                "sampled: about one packet in {} of each flow traced hop by hop (TCP openings and ends, ICMP and drops always), every packet counted at each hook it crossed (--flows gives each path its count)",
                1u64 << shift
            )
        })
    }

    /// Every counter so far: the source's, correlation's, the sink's and the reader's.
    pub fn counters(&self) -> Counters {
        let mut pipeline = self.correlator.counters();
        pipeline.ui_dropped = self.sink.dropped();
        Counters {
            source: self.source,
            pipeline,
            read: self.read,
        }
    }

    pub fn sink(&mut self) -> &mut dyn Sink {
        self.sink
    }

    fn deliver(&mut self) -> io::Result<Flow> {
        if self.done.is_empty() {
            return Ok(Flow::Continue);
        }
        let mut flow = Flow::Continue;
        for correlated in self.done.drain(..) {
            if flow == Flow::Stop {
                // Past the limit: the rest of this batch is not shown.
                break;
            }
            self.sink.correlated(&correlated)?;
            self.tally.add(correlated.journey.verdict);
            if self.limit.is_some_and(|limit| self.tally.total() >= limit) {
                flow = Flow::Stop;
            }
        }
        self.done.clear();
        self.sink.flush()?;
        Ok(flow)
    }
}
