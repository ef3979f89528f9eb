//! How far apart two machines' clocks are, estimated from the packets that cross between
//! them, the way NTP does from its four timestamps.
//!
//! A packet that leaves machine A through an uplink and arrives on machine B's is the same
//! frame on both NICs: its headers (and, over VXLAN, its outer header) are equal there.
//! Put on one timeline by wall clocks, B's times are off by an unknown `e`. Such a crossing
//! A → B measures `delay + e`, one B → A measures `delay - e`, and delays are never
//! negative, so `-min(B→A) ≤ e ≤ min(A→B)`: the estimate is the middle of that interval and
//! its error half its width — half the shortest round trip, as NTP keeps its lowest-delay
//! sample. With crossings one way only, the bound is one-sided: B is moved only as far as
//! causality demands (no packet arrives before it leaves), and no error can be stated.
//!
//! Machines are compared with the first recording's (the reference), directly where
//! packets crossed between them, else through a machine that is compared already.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
};

use serde::Serialize;

use crate::{
    journey::observation::{Hook, IpProto, Observation},
    topology::{HostRole, Topology},
};

/// One machine's clock against the reference's, as the summary and `--output json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockEstimate {
    /// The recordings of that machine (their nodes, or host names).
    pub machine: String,
    /// The first recording's machine, whose clock the others are set by.
    pub reference: String,
    /// The machine it was compared with (the reference, or one compared already).
    pub compared_with: String,
    /// How far its clock is ahead of the reference's (negative: behind), beyond what the
    /// wall clocks said; subtracted from its times.
    pub offset_ns: i64,
    /// Half the shortest round trip: the true offset is within this of `offset_ns`. `None`
    /// when packets crossed one way only.
    pub error_ns: Option<u64>,
    /// Crossings to and from `compared_with`.
    pub crossings_there: usize,
    pub crossings_back: usize,
}

impl ClockEstimate {
    /// Machine `machine`'s estimate, or what is known without one.
    pub fn new(machines: &[String], machine: usize, offset: Option<Offset>) -> Self {
        let name = |m: usize| machines.get(m).cloned().unwrap_or_default();
        let offset = offset.unwrap_or_default();
        Self {
            machine: name(machine),
            reference: name(0),
            compared_with: name(offset.against),
            offset_ns: offset.ns,
            error_ns: offset.error_ns,
            crossings_there: offset.crossings_there,
            crossings_back: offset.crossings_back,
        }
    }

    /// For a header: "cpu1 +40.013 ms vs cpu2 (± 52.0 µs)".
    pub fn short(&self) -> String {
        if self.crossings_there + self.crossings_back == 0 {
            return format!("{} by wall clock", self.machine);
        }
        let sign = if self.offset_ns >= 0 { '+' } else { '−' };
        let error = self.error_ns.map_or_else(
            || "one way".to_owned(),
            |e| format!("± {}", crate::clock::format_duration(e)),
        );
        format!(
            "{} {sign}{} vs {} ({error})",
            self.machine,
            crate::clock::format_duration(self.offset_ns.unsigned_abs()),
            self.reference
        )
    }

    /// For the summary: "gpu1's clock is 40.013 ms ahead of cpu2's (± 52.0 µs, from 12
    /// crossings there and 12 back)".
    pub fn text(&self) -> String {
        if self.crossings_there + self.crossings_back == 0 {
            return format!(
                "no traced packet crossed between {} and the other machines: its hops are placed by its wall clock alone",
                self.machine
            );
        }
        let how_far = crate::clock::format_duration(self.offset_ns.unsigned_abs());
        let which = if self.offset_ns >= 0 {
            "ahead of"
        } else {
            "behind"
        };
        let error = self.error_ns.map_or_else(
            || {
                "no error can be given: packets crossed one way only, or crossings disagree"
                    .to_owned()
            },
            |e| format!("± {}", crate::clock::format_duration(e)),
        );
        format!(
            "{}'s clock is {how_far} {which} {}'s beyond what the wall clocks say ({error}; from {} crossings one way and {} the other between it and {}): its times are corrected by it",
            self.machine,
            self.reference,
            self.crossings_there,
            self.crossings_back,
            self.compared_with
        )
    }
}

/// What identifies one frame on the wire between two machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct WireKey {
    proto: IpProto,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    ip_id: u16,
    ip_len: u16,
    tcp: (u32, u32, u8),
    icmp: (u16, u16),
    payload_hash: u32,
    outer: Option<(Ipv4Addr, Ipv4Addr, u16, u32)>,
}

impl WireKey {
    fn of(obs: &Observation) -> Self {
        Self {
            proto: obs.tuple.proto,
            src: obs.tuple.src,
            dst: obs.tuple.dst,
            ports: (obs.tuple.sport, obs.tuple.dport),
            ip_id: obs.ip_id,
            ip_len: obs.ip_len,
            tcp: (obs.tcp_seq, obs.tcp_ack, obs.tcp_flags),
            icmp: (obs.icmp_id, obs.icmp_seq),
            payload_hash: obs.payload_hash,
            outer: obs.outer.map(|o| (o.src, o.dst, o.sport, o.vni)),
        }
    }
}

/// The frames seen leaving and entering machines through their uplinks.
#[derive(Default)]
pub struct Crossings {
    topology: std::sync::Arc<Topology>,
    /// Whether (cookie, ifindex) is a node's uplink, for the current topology.
    uplink: HashMap<(u64, u32), bool>,
    /// Each frame's sightings: machine, leaving (else entering), and its time — `None`
    /// when that machine saw two frames with the key that way (ambiguous: left out).
    seen: HashMap<WireKey, Vec<Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    machine: u16,
    leaving: bool,
    ts_ns: Option<u64>,
}

/// The shortest crossing each way between two machines `a < b`: `a → b` measures
/// `t_b - t_a`, `b → a` measures `t_a - t_b`.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    there: Option<i64>,
    back: Option<i64>,
    crossings_there: usize,
    crossings_back: usize,
}

impl Crossings {
    pub fn topology(&mut self, topology: std::sync::Arc<Topology>) {
        self.topology = topology;
        self.uplink.clear();
    }

    pub fn observe(&mut self, obs: &Observation) {
        let leaving = match obs.hook {
            Hook::Egress => true,
            Hook::Ingress => false,
            _ => return,
        };
        let topology = &self.topology;
        let on_uplink = *self
            .uplink
            .entry((obs.netns_cookie, obs.ifindex))
            .or_insert_with(|| {
                matches!(
                    topology.host(obs.netns_cookie).map(|h| &h.role),
                    Some(HostRole::Node { .. })
                ) && topology
                    .uplinks(obs.netns_cookie)
                    .iter()
                    .any(|l| l.ifindex == obs.ifindex)
            });
        if !on_uplink {
            return;
        }
        // The machine it was made on: the source its cookie was qualified with.
        let machine = crate::pipeline::source::SourceId::of(obs.netns_cookie).0;
        let sightings = self.seen.entry(WireKey::of(obs)).or_default();
        match sightings
            .iter_mut()
            .find(|s| s.machine == machine && s.leaving == leaving)
        {
            Some(again) => again.ts_ns = None,
            None => sightings.push(Seen {
                machine,
                leaving,
                ts_ns: Some(obs.ts_ns),
            }),
        }
    }

    fn pairs(&self) -> HashMap<(u16, u16), Pair> {
        let mut pairs: HashMap<(u16, u16), Pair> = HashMap::new();
        for sightings in self.seen.values() {
            for left in sightings.iter().filter(|s| s.leaving) {
                for arrived in sightings.iter().filter(|s| !s.leaving) {
                    let (Some(t_left), Some(t_arrived)) = (left.ts_ns, arrived.ts_ns) else {
                        continue;
                    };
                    if left.machine == arrived.machine {
                        continue;
                    }
                    let measured = i64::try_from(i128::from(t_arrived) - i128::from(t_left))
                        .unwrap_or(i64::MAX);
                    let (a, b) = (
                        left.machine.min(arrived.machine),
                        left.machine.max(arrived.machine),
                    );
                    let pair = pairs.entry((a, b)).or_default();
                    if left.machine == a {
                        pair.crossings_there += 1;
                        pair.there = Some(pair.there.map_or(measured, |m| m.min(measured)));
                    } else {
                        pair.crossings_back += 1;
                        pair.back = Some(pair.back.map_or(measured, |m| m.min(measured)));
                    }
                }
            }
        }
        pairs
    }

    /// Each machine's offset against machine 0 (the first recording's): what to subtract
    /// from its times; `None` for a machine no packet crossed to or from. Each is placed by
    /// the chain of comparisons with the smallest error (a one-way comparison counts as
    /// worse than any two-way chain), found in the same order every time.
    pub fn offsets(&self, machines: usize) -> Vec<Option<Offset>> {
        let pairs: BTreeMap<(u16, u16), Pair> = self.pairs().into_iter().collect();
        let mut offsets: Vec<Option<Offset>> = vec![None; machines];
        if let Some(first) = offsets.first_mut() {
            *first = Some(Offset::reference());
        }
        // Relax every comparison until nothing improves (Bellman–Ford; a few machines).
        for _ in 0..machines {
            let mut changed = false;
            for (&(a, b), pair) in &pairs {
                let (a, b) = (usize::from(a), usize::from(b));
                if a >= machines || b >= machines {
                    continue;
                }
                let estimate = pair.estimate();
                for (from, to, step) in [(a, b, estimate), (b, a, estimate.reversed())] {
                    let Some(known) = offsets[from] else {
                        continue;
                    };
                    let candidate = known.then(step, b_against_a(from, pair));
                    if offsets[to].is_none_or(|current| candidate.cost() < current.cost()) {
                        offsets[to] = Some(candidate);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        offsets
    }
}

/// The comparison that placed a machine: with which machine, and how many crossings.
fn b_against_a(against: usize, pair: &Pair) -> (usize, usize, usize) {
    (against, pair.crossings_there, pair.crossings_back)
}

/// One machine's clock against the reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offset {
    pub ns: i64,
    /// Accumulated along the chain of comparisons; `None` if any was one-sided.
    pub error_ns: Option<u64>,
    /// The machine it was compared with, and the crossings there and back.
    pub against: usize,
    pub crossings_there: usize,
    pub crossings_back: usize,
}

impl Offset {
    /// The reference machine's own.
    fn reference() -> Self {
        Self {
            error_ns: Some(0),
            ..Self::default()
        }
    }

    /// What placing it this way risks: its error, and any one-way comparison worse than
    /// every error.
    fn cost(self) -> u64 {
        self.error_ns.unwrap_or(u64::MAX)
    }

    fn then(self, step: Estimate, (against, there, back): (usize, usize, usize)) -> Self {
        Self {
            ns: self.ns + step.ns,
            error_ns: self.error_ns.zip(step.error_ns).map(|(a, b)| a + b),
            against,
            crossings_there: there,
            crossings_back: back,
        }
    }
}

/// B's offset against A from one pair.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    ns: i64,
    error_ns: Option<u64>,
}

impl Estimate {
    fn reversed(self) -> Self {
        Self {
            ns: -self.ns,
            error_ns: self.error_ns,
        }
    }
}

impl Pair {
    fn estimate(&self) -> Estimate {
        match (self.there, self.back) {
            (Some(there), Some(back)) => Estimate {
                ns: (there - back) / 2,
                error_ns: u64::try_from((there + back) / 2).ok(),
            },
            // B's times must not put an arrival before its departure.
            (Some(there), None) => Estimate {
                ns: there.min(0),
                error_ns: None,
            },
            (None, Some(back)) => Estimate {
                ns: (-back).max(0),
                error_ns: None,
            },
            (None, None) => Estimate {
                ns: 0,
                error_ns: None,
            },
        }
    }
}
