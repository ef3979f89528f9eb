//! Clocks of a live stitch (`follow --agents` across machines). A replay reads its
//! recordings twice, the first time only to estimate the clocks ([`super::estimate_clocks`]);
//! a stream can be read once. So a live stitch holds back what it has read until the
//! packets that crossed between the machines have set their clocks, then hands everything
//! on corrected, and keeps that correction for the rest of the session:
//! - every machine compared both ways with the reference: at once;
//! - otherwise [`SETTLE`] after the first crossing (a one-way comparison moves a machine
//!   only as far as causality demands, as in a replay);
//! - no crossing at all within [`IDLE`] (no traffic between the machines): the wall clocks
//!   stay. Setting them later would move times already handed on: what comes after would
//!   be told before what it follows.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::clocks::{Crossings, Offset};
use crate::{journey::observation::Observation, topology::Topology};

/// How long after the first crossing the other machines' crossings are waited for.
const SETTLE: Duration = Duration::from_secs(1);
/// How long the session may show nothing for want of a crossing.
const IDLE: Duration = Duration::from_secs(3);

pub(super) struct Calibration {
    crossings: Crossings,
    machines: usize,
    started: Instant,
    first_crossing: Option<Instant>,
}

/// What the clocks allow now.
pub(super) enum Settled {
    /// Hold what was read.
    Hold,
    /// No crossing came: the wall clocks stay (the calibration is over).
    Release,
    /// Set the machines' clocks by these offsets (against machine 0), then hand on.
    Set(Vec<Option<Offset>>),
}

impl Calibration {
    pub fn new(machines: usize) -> Self {
        Self {
            crossings: Crossings::default(),
            machines,
            started: Instant::now(),
            first_crossing: None,
        }
    }

    pub fn topology(&mut self, topology: Arc<Topology>) {
        self.crossings.topology(topology);
    }

    pub fn observe(&mut self, obs: &Observation) {
        self.crossings.observe(obs);
    }

    /// Whether to hold, keep the wall clocks, or set the clocks; `finishing` when nothing
    /// more will be read. After `Set` or `Release`, the calibration is over (drop it).
    pub fn settle(&mut self, finishing: bool) -> Settled {
        let offsets = self.crossings.offsets(self.machines);
        let others = offsets.get(1..).unwrap_or_default();
        if others.iter().any(Option::is_some) {
            let first = *self.first_crossing.get_or_insert_with(Instant::now);
            let two_way = others
                .iter()
                .all(|o| o.is_some_and(|o| o.error_ns.is_some()));
            if two_way || finishing || first.elapsed() >= SETTLE {
                return Settled::Set(offsets);
            }
            return Settled::Hold;
        }
        if finishing || self.started.elapsed() >= IDLE {
            Settled::Release
        } else {
            Settled::Hold
        }
    }
}
