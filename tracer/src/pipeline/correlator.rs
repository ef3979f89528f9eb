//! The one place where observations become named journeys, for every source (see the
//! module doc of [`super`]).

use std::sync::Arc;

use super::{
    counters::PipelineCounters,
    input::{Input, Session},
};
use crate::{
    drop_reason::DropReasons,
    journey::{
        assemble::{Assembler, RawJourney},
        explain::{self, Context, Followed},
        fate,
        memo::Memo,
        model::Journey,
        naming::ModelNames,
    },
    k8s::ClusterModel,
    timeline::Timeline,
    topology::Topology,
};

/// How long superseded versions of the names and the topology are kept, for packets seen
/// before a change and explained after it (at most [`crate::timeline::KEPT`] versions).
pub const HISTORY_NS: u64 = 5_000_000_000;

/// A finished packet: its raw observations (exports rebuild packets from them) and its
/// journey.
#[derive(Debug, Clone)]
pub struct Correlated {
    pub raw: RawJourney,
    pub journey: Journey,
}

#[derive(Default)]
pub struct Correlator {
    session: Arc<Session>,
    followed: Followed,
    names: Timeline<ClusterModel>,
    topologies: Timeline<Topology>,
    reasons: Arc<DropReasons>,
    assembler: Assembler,
    memo: Memo,
    counters: PipelineCounters,
}

impl Correlator {
    pub fn new() -> Self {
        Self {
            assembler: Assembler::new(),
            ..Self::default()
        }
    }

    /// What the pipeline counted so far (correlation's part; the sinks add theirs).
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            evicted: self.assembler.evicted,
            ..self.counters
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Takes one input; journeys that completed go to `out`, in the order they completed.
    pub fn apply(&mut self, input: Input, out: &mut Vec<Correlated>) {
        match input {
            Input::Session(session) => {
                self.followed = session.followed();
                self.session = session;
            }
            Input::Cluster { since_ns, names } => self.names.push(since_ns, names),
            Input::Topology { since_ns, topology } => self.topologies.push(since_ns, topology),
            Input::DropReasons(reasons) => {
                self.reasons = reasons;
                // Drop hops remembered with the old names must be explained again.
                self.memo.clear();
            }
            Input::Observations { now_ns, batch } => {
                let mut closed = Vec::new();
                for obs in batch {
                    self.counters.observations += 1;
                    closed.extend(self.assembler.push(obs));
                }
                closed.extend(self.assembler.flush(now_ns));
                self.explain(closed, out);
                let horizon = now_ns.saturating_sub(HISTORY_NS);
                self.names.forget_superseded_before(horizon);
                self.topologies.forget_superseded_before(horizon);
            }
            Input::Counters(_) | Input::Notice { .. } | Input::HopCounts { .. } => {}
        }
    }

    /// Ends the session: every packet still open is explained as it stands.
    pub fn finish(&mut self, out: &mut Vec<Correlated>) {
        let open = self.assembler.flush(u64::MAX);
        self.explain(open, out);
    }

    fn explain(&mut self, raws: Vec<RawJourney>, out: &mut Vec<Correlated>) {
        for raw in raws {
            // Named as the world was when the packet started: a Pod replaced (its address
            // reused) in between must not rename the old one's packets.
            let started = raw.observations.first().map_or(u64::MAX, |o| o.ts_ns);
            let (names_serial, names) = self.names.at(started).unwrap_or_default();
            let (topology_serial, topology) = self.topologies.at(started).unwrap_or_default();
            if fate::only_late_discards(&raw, &self.reasons) {
                // A copy discarded by a socket that did not want it, or a packet a socket
                // discarded long after delivery: not a journey of its own (journey::fate).
                self.counters.late_discards += 1;
                continue;
            }
            self.memo.renew((names_serial, topology_serial));
            let ctx = Context {
                topology: &topology,
                cluster: &ModelNames(&names),
                reasons: &self.reasons,
                followed: &self.followed,
                wall_offset_ns: i128::from(self.session.wall_offset_ns),
                memo: &self.memo,
            };
            let journey = explain::explain(&raw, &ctx);
            if !self.session.filter.wants(&journey) {
                self.counters.filtered += 1;
                continue;
            }
            out.push(Correlated { raw, journey });
        }
    }
}
