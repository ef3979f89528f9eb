//! Flows and their distinct paths: the journeys of a session grouped the way people read a
//! busy one — not one row per packet, but each way the traffic went, how often, how fast,
//! and whether it arrived.
//!
//! A *flow* here is what a user follows between two names: protocol, direction, FROM's and
//! TO's names and the server's port. Clients' ephemeral ports are folded together (every
//! connection of `curl` to a Service is one flow), so a flood of short connections is a few
//! rows. A *path* is the sequence of places a packet went — each hop's kind, node, interface
//! or Pod, the endpoint a NAT chose, a drop's reason — and its verdict; times are left out.
//! So a Service spreading traffic over three endpoints shows three paths of one flow, and
//! a packet dropped on the way is a path of its own next to the delivered ones.
//!
//! Each path keeps its packet and byte counts, first and last seen, the spread of its
//! journeys' durations (a log-scale histogram: bounded memory, percentiles at most 25 % above the true value),
//! its newest diagnosis and the ids of a few journeys to look at (the first and the newest).
//! `--flows` prints them at the end (`output::text`, `output::json`: schema in
//! docs/json-schema.md).
//!
//! A sampling session (`follow --sample N`) traces one packet in N of a busy flow and
//! counts every packet at each TC hook it crosses (`journey::counted`). Each traced
//! journey teaches the table the places its packet crossed and counts itself at each of
//! them; places belong to the connection (the 5-tuple of its first hop) that crossed them
//! first. A connection's counts go to its first delivered path — every drop is traced, so
//! a failed path's packets are its journeys — and are the packets not traced that crossed
//! every place it owns: at each place the count less the traced packets that crossed it
//! (on any path: a packet dropped after the place was counted there), the fewest of them.
//! A path's figure sums its connections'.

use std::{collections::HashMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    clock::format_duration,
    journey::{
        counted::{CountedTotals, Crossed, HopCounts, HopPlace},
        model::{Direction, Hop, HopKind, Journey, Verdict},
        observation::{IpProto, Tuple},
    },
    output::FlowTotals,
};

/// The journeys a path keeps for drill-down: its first, and this many of its newest.
const NEWEST_KEPT: usize = 8;
/// Histogram buckets: 4 per power of two of nanoseconds.
const BUCKETS: usize = 64 * 4;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    pub protocol: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    /// The server's port (TO's for a request, FROM's for a reply); 0 without ports.
    pub port: u16,
}

impl FlowKey {
    pub fn of(journey: &Journey) -> Self {
        let mut from = String::new();
        write_from(journey, &mut from);
        Self {
            protocol: journey.protocol.name().to_owned(),
            direction: direction_name(journey).to_owned(),
            from,
            to: journey.to.label(),
            port: server_port(journey),
        }
    }

    /// `tcp nettest → svc/nginx-test:80 (request)`, `tcp svc/nginx-test:80 → nettest
    /// (reply)`: the port with the server.
    pub fn describe(&self) -> String {
        let port = if self.port == 0 {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        let (from, to) = if self.direction == "reply" {
            (format!("{}{port}", self.from), self.to.clone())
        } else {
            (self.from.clone(), format!("{}{port}", self.to))
        };
        format!("{} {from} → {to} ({})", self.protocol, self.direction)
    }
}

fn direction_name(journey: &Journey) -> &'static str {
    match journey.direction {
        Direction::Request => "request",
        Direction::Reply => "reply",
        Direction::Related => "related",
    }
}

/// TO's port for a request, FROM's for a reply; 0 for ICMP and related packets.
fn server_port(journey: &Journey) -> u16 {
    if journey.protocol == IpProto::Icmp {
        return 0;
    }
    match journey.direction {
        Direction::Request => journey.original.dport,
        Direction::Reply => journey.original.sport,
        Direction::Related => 0,
    }
}

/// FROM's name; a reply that conntrack gave its Service's address back is named from that
/// Service (`svc/name`): it belongs with the requests to that Service, whichever endpoint
/// answered (that is its path).
fn write_from(journey: &Journey, out: &mut String) {
    let service = (journey.direction == Direction::Reply)
        .then(|| {
            journey.hops.iter().find_map(|hop| {
                let service = hop.nat.as_ref()?.service.as_deref()?;
                (hop.kind == HopKind::ReplyUndnat).then_some(service)
            })
        })
        .flatten();
    match service {
        Some(service) => {
            out.push_str("svc/");
            out.push_str(service.rsplit('/').next().unwrap_or(service));
        }
        None => journey.from.write_label(out),
    }
}

/// One place on a path: `cpu2 pod egress nettest`, `cpu2 veth cali37b956d7204`,
/// `cpu2 service DNAT 10.109.60.89:80 → 10.244.184.84:80`, `cpu1 DROP NO_ROUTE`.
fn write_step(hop: &Hop, out: &mut String) {
    if let Some(node) = &hop.node {
        out.push_str(node);
        out.push(' ');
    }
    out.push_str(hop.kind.label());
    let pod = hop
        .pod
        .as_deref()
        .map(|p| p.rsplit('/').next().unwrap_or(p));
    let place = match hop.kind {
        HopKind::PodEgress | HopKind::PodDelivery => pod.or(hop.interface.as_deref()),
        _ => hop.interface.as_deref(),
    };
    if let Some(place) = place {
        out.push(' ');
        out.push_str(place);
    }
    if let Some(nat) = &hop.nat {
        // The side the rewrite changed, before and after: which endpoint, which Service.
        let rewrites_source = matches!(hop.kind, HopKind::Snat | HopKind::ReplyUndnat);
        let side = |e: &crate::journey::model::Endpoints, out: &mut String| {
            let (ip, port) = if rewrites_source {
                (e.src, e.sport)
            } else {
                (e.dst, e.dport)
            };
            // Writing to a String cannot fail.
            let _ = if port == 0 {
                write!(out, "{ip}")
            } else {
                write!(out, "{ip}:{port}")
            };
        };
        out.push(' ');
        side(&nat.before, out);
        out.push_str(" → ");
        side(&nat.after, out);
    }
    if let Some(drop) = &hop.drop {
        out.push(' ');
        out.push_str(&drop.reason);
    }
    if !hop.observed {
        out.push_str(" (inferred)");
    }
}

/// A journey's path: its places in order.
pub fn steps(journey: &Journey) -> Vec<String> {
    journey
        .hops
        .iter()
        .map(|hop| {
            let mut step = String::new();
            write_step(hop, &mut step);
            step
        })
        .collect()
}

/// Between fields of a [`signature`]: no name, address or drop reason contains it.
const SEPARATOR: char = '\u{1f}';

/// Everything that tells one path of one flow from another — the flow's key, the verdict
/// and the steps — in `out`, without allocating per field: the table finds a journey's
/// path by this text, and builds the key and steps only for a path it has not seen.
fn signature(journey: &Journey, out: &mut String) {
    out.clear();
    let _ = write!(
        out,
        "{}{SEPARATOR}{}{SEPARATOR}",
        journey.protocol.name(),
        direction_name(journey)
    );
    write_from(journey, out);
    out.push(SEPARATOR);
    journey.to.write_label(out);
    let _ = write!(
        out,
        "{SEPARATOR}{}{SEPARATOR}{}",
        server_port(journey),
        journey.verdict.as_str()
    );
    for hop in &journey.hops {
        out.push(SEPARATOR);
        write_step(hop, out);
    }
}

/// Journey durations on a log scale: bucket `4·⌊log2 d⌋ + the next two bits`.
#[derive(Debug, Clone)]
struct Spread {
    counts: Box<[u64; BUCKETS]>,
    min: u64,
    max: u64,
}

impl Spread {
    fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            min: u64::MAX,
            max: 0,
        }
    }

    fn bucket(ns: u64) -> usize {
        if ns < 4 {
            return ns as usize;
        }
        let log = 63 - ns.leading_zeros() as usize;
        let next_two = ((ns >> (log - 2)) & 3) as usize;
        (log * 4 + next_two).min(BUCKETS - 1)
    }

    /// The smallest duration of bucket `b`.
    fn lower_bound(b: usize) -> u64 {
        if b < 8 {
            // 0–3 ns have a bucket each; 4–7 are never used (4 ns starts at 8).
            return (b as u64).min(3);
        }
        let (log, next_two) = (b / 4, (b % 4) as u64);
        (1u64 << log) | (next_two << (log - 2))
    }

    fn add(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// The largest duration of bucket `b`.
    fn upper_bound(b: usize) -> u64 {
        match b {
            0..4 => b as u64,
            _ if b + 1 >= BUCKETS => u64::MAX,
            _ => Self::lower_bound(b + 1) - 1,
        }
    }

    /// The `q`-quantile (0..=1): at most its bucket's largest duration (so never below the
    /// true value, and within a quarter of a power of two above it), clamped to what was
    /// seen.
    fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(b).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// One distinct path of a flow.
#[derive(Debug, Clone)]
pub struct PathStats {
    pub steps: Vec<String>,
    pub verdict: Verdict,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// CLOCK_MONOTONIC of the first and newest journey's start.
    pub first_ns: u64,
    pub last_ns: u64,
    pub diagnosis: String,
    /// The first journey's id, then the newest ones (oldest first).
    pub journeys: Vec<u64>,
    spread: Spread,
    /// Its connections' places counted (indexes into `FlowTable::connections`).
    connections: Vec<usize>,
}

/// Durations of a path's journeys, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub min: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl PathStats {
    pub fn durations(&self) -> Durations {
        Durations {
            min: if self.packets == 0 {
                0
            } else {
                self.spread.min
            },
            p50: self.spread.quantile(0.5),
            p99: self.spread.quantile(0.99),
            max: self.spread.max,
        }
    }
}

/// A flow path as `--output json --flows` prints it (one per line, before the summary).
#[derive(Debug, Serialize)]
pub struct FlowPathRecord<'a> {
    pub flow: &'a FlowKey,
    /// 1-based, by first seen within the flow.
    pub path: usize,
    pub steps: &'a [String],
    pub verdict: Verdict,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen: &'a str,
    pub last_seen: &'a str,
    pub duration_ns: Durations,
    pub diagnosis: &'a str,
    pub journeys: &'a [u64],
    /// A sampling session: packets counted on this path besides the `packets` traced hop
    /// by hop; absent when the session traced every packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_counted: Option<u64>,
}

/// Paths kept at most (each about 2.5 KB): journeys on further new paths are counted, not
/// kept, so a session with endless distinct peers cannot grow the table without limit.
pub const MAX_PATHS: usize = 10_000;

/// Every flow of a session and its paths, in the order first seen.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: Vec<(FlowKey, Vec<PathStats>)>,
    index: HashMap<FlowKey, usize>,
    /// Each kept path (flow, path) by its [`signature`].
    by_signature: HashMap<Box<str>, (usize, usize)>,
    /// The [`signature`] of the journey being added, its allocation kept between journeys.
    scratch: String,
    /// Journeys that would have started a path past [`MAX_PATHS`].
    beyond: u64,
    /// A sampling session's counting: off until the session says it samples.
    counting: Option<Counting>,
}

/// Places kept at most: a connection's journey teaches 4–10.
const MAX_PLACES: usize = 200_000;

/// Connections kept at most for counting (each a few places).
const MAX_CONNECTIONS: usize = 50_000;

/// What a sampling session's counts are attributed by.
#[derive(Debug, Default)]
struct Counting {
    /// The newest totals of every place.
    totals: CountedTotals,
    /// Each connection seen (by the 5-tuple of its packets' first hop).
    connections: Vec<Connection>,
    by_tuple: HashMap<Tuple, usize>,
    /// Each place a traced packet crossed (it counts for the connection that crossed it
    /// first, in whose `places` it is) and how many traced packets crossed it (on any
    /// path: delivered, dropped after it, …).
    traced_at: HashMap<HopPlace, u64>,
}

#[derive(Debug, Default)]
struct Connection {
    /// The path its counts go to: the first delivered one (every drop is traced, so a
    /// failed path's packets are its journeys).
    path: Option<(usize, usize)>,
    places: Vec<HopPlace>,
}

impl FlowTable {
    /// The session samples one packet in `2^shift`: learn where traced packets were counted.
    pub fn sampling(&mut self, shift: u8) {
        if shift > 0 && self.counting.is_none() {
            self.counting = Some(Counting::default());
        }
    }

    /// Forgets every path, keeping what a sampling session counted (the journeys are added
    /// again: a replay's seek).
    pub fn clear_paths(&mut self) {
        let counting = self.counting.take().map(|c| Counting {
            totals: c.totals,
            ..Counting::default()
        });
        *self = Self {
            counting,
            ..Self::default()
        };
    }

    /// Forgets what a sampling session counted, still counting (a replay's seek shows the
    /// counts again from the start).
    pub fn clear_counts(&mut self) {
        if let Some(counting) = &mut self.counting {
            counting.totals = CountedTotals::default();
        }
    }

    /// The newest counts of a sampling session.
    pub fn hop_counts(&mut self, counts: &HopCounts) {
        self.counting
            .get_or_insert_with(Counting::default)
            .totals
            .update(counts);
    }

    /// Sampling: the places a journey's packet was counted at, for its connection.
    fn learn_places(&mut self, journey: &Journey, path: (usize, usize)) {
        let (Some(counting), Some(at)) = (&mut self.counting, &journey.counted_at) else {
            return;
        };
        let connection = match counting.by_tuple.get(&at.connection) {
            Some(&c) => c,
            None if counting.connections.len() >= MAX_CONNECTIONS => return,
            None => {
                counting.connections.push(Connection::default());
                let c = counting.connections.len() - 1;
                counting.by_tuple.insert(at.connection, c);
                c
            }
        };
        if journey.verdict == Verdict::Delivered && counting.connections[connection].path.is_none()
        {
            counting.connections[connection].path = Some(path);
            self.flows[path.0].1[path.1].connections.push(connection);
        }
        for place in &at.places {
            let full = counting.traced_at.len() >= MAX_PLACES;
            match counting.traced_at.get_mut(place) {
                Some(traced) => *traced += 1,
                None if full => {}
                None => {
                    counting.traced_at.insert(*place, 1);
                    counting.connections[connection].places.push(*place);
                }
            }
        }
    }

    /// A sampling session's packets on a path besides those traced: for each connection
    /// whose counts go to it, the packets not traced that crossed every place it owns (the
    /// fewest at any of them).
    pub fn more_counted(&self, path: &PathStats) -> Option<u64> {
        let counting = self.counting.as_ref()?;
        let more = path
            .connections
            .iter()
            .filter_map(|&c| {
                counting.connections[c]
                    .places
                    .iter()
                    .filter_map(|place| {
                        let crossed: Crossed = counting.totals.get(place)?;
                        let traced = counting.traced_at.get(place).copied().unwrap_or(0);
                        Some(crossed.packets.saturating_sub(traced))
                    })
                    .min()
            })
            .sum();
        Some(more)
    }

    /// Places counted that no traced packet crossed (a connection none of whose packets
    /// was traced yet), and the hook crossings counted there: they are on no path.
    pub fn places_unattributed(&self) -> (usize, u64) {
        self.counting.as_ref().map_or((0, 0), |counting| {
            counting
                .totals
                .iter()
                .filter(|(place, _)| !counting.traced_at.contains_key(place))
                .fold((0, 0), |(places, crossings), (_, crossed)| {
                    (places + 1, crossings + crossed.packets)
                })
        })
    }

    pub fn add(&mut self, journey: &Journey) {
        signature(journey, &mut self.scratch);
        let (flow, path) = match self.by_signature.get(self.scratch.as_str()) {
            Some(&found) => found,
            None if self.by_signature.len() >= MAX_PATHS => {
                self.beyond += 1;
                return;
            }
            None => {
                let found = self.new_path(journey);
                self.by_signature
                    .insert(self.scratch.as_str().into(), found);
                found
            }
        };
        self.learn_places(journey, (flow, path));
        let path = &mut self.flows[flow].1[path];
        path.packets += 1;
        path.bytes += u64::from(journey.length);
        path.last_seen.clone_from(&journey.started_at);
        path.last_ns = journey.start_ns;
        path.diagnosis.clone_from(&journey.diagnosis);
        if path.journeys.len() > NEWEST_KEPT {
            path.journeys.remove(1);
        }
        path.journeys.push(journey.id);
        path.spread.add(journey.duration_ns);
    }

    /// A path (and its flow, if new) for a journey unlike any before it.
    fn new_path(&mut self, journey: &Journey) -> (usize, usize) {
        let key = FlowKey::of(journey);
        let flow = *self.index.entry(key.clone()).or_insert_with(|| {
            self.flows.push((key, Vec::new()));
            self.flows.len() - 1
        });
        let paths = &mut self.flows[flow].1;
        paths.push(PathStats {
            steps: steps(journey),
            verdict: journey.verdict,
            packets: 0,
            bytes: 0,
            first_seen: journey.started_at.clone(),
            last_seen: String::new(),
            first_ns: journey.start_ns,
            last_ns: 0,
            diagnosis: String::new(),
            journeys: Vec::new(),
            spread: Spread::new(),
            connections: Vec::new(),
        });
        (flow, paths.len() - 1)
    }

    pub fn flows(&self) -> impl Iterator<Item = (&FlowKey, &[PathStats])> {
        self.flows.iter().map(|(k, p)| (k, p.as_slice()))
    }

    pub fn paths(&self) -> usize {
        self.by_signature.len()
    }

    /// Journeys not counted on any path: they would have started one past [`MAX_PATHS`].
    pub fn beyond(&self) -> u64 {
        self.beyond
    }

    pub fn totals(&self) -> FlowTotals {
        FlowTotals {
            flows: self.flows.len(),
            paths: self.paths(),
            journeys_not_kept: self.beyond,
        }
    }

    /// For people, when journeys were left out: how many, and why.
    pub fn beyond_note(&self) -> Option<String> {
        (self.beyond > 0).then(|| {
            format!(
                "{} more journeys on paths past the first {MAX_PATHS}, not kept",
                self.beyond
            )
        })
    }

    /// For people, when a sampling session counted where no traced packet went.
    pub fn unattributed_note(&self) -> Option<String> {
        let (places, crossings) = self.places_unattributed();
        (places > 0).then(|| {
            let places = if places == 1 {
                "1 place".to_owned()
            } else {
                format!("{places} places")
            };
            format!(
                "{crossings} hook crossings counted at {places} no traced packet crossed (connections none of whose packets was traced yet): on no path"
            )
        })
    }

    /// One record per path, flow by flow.
    pub fn records(&self) -> impl Iterator<Item = FlowPathRecord<'_>> {
        self.flows().flat_map(move |(flow, paths)| {
            paths.iter().enumerate().map(move |(i, p)| FlowPathRecord {
                flow,
                path: i + 1,
                steps: &p.steps,
                verdict: p.verdict,
                packets: p.packets,
                bytes: p.bytes,
                first_seen: &p.first_seen,
                last_seen: &p.last_seen,
                duration_ns: p.durations(),
                diagnosis: &p.diagnosis,
                journeys: &p.journeys,
                more_counted: self.more_counted(p),
            })
        })
    }

    /// For people: each flow, then each of its paths with its figures and its places.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} flows, {} distinct paths:\n",
            self.flows.len(),
            self.paths()
        );
        for (flow, paths) in self.flows() {
            out.push_str(&format!("{}\n", flow.describe()));
            for (i, p) in paths.iter().enumerate() {
                let d = p.durations();
                let ids: Vec<String> = p.journeys.iter().map(|id| format!("#{id}")).collect();
                out.push_str(&format!(
                    "  path {}: {} · {} · {} bytes · {} – {} · duration min {} p50 {} p99 {} max {} · e.g. {}\n",
                    i + 1,
                    p.verdict.as_str(),
                    if p.packets == 1 {
                        "1 packet".to_owned()
                    } else {
                        format!("{} packets", p.packets)
                    },
                    p.bytes,
                    clock_of(&p.first_seen),
                    clock_of(&p.last_seen),
                    format_duration(d.min),
                    format_duration(d.p50),
                    format_duration(d.p99),
                    format_duration(d.max),
                    ids.join(" "),
                ));
                if let Some(more) = self.more_counted(p) {
                    out.push_str(&format!(
                        "    traced hop by hop: {}; counted at every hop besides: {more}\n",
                        p.packets
                    ));
                }
                out.push_str(&format!("    {}\n", p.steps.join(" → ")));
                if p.verdict != Verdict::Delivered {
                    out.push_str(&format!("    ⇒ {}\n", p.diagnosis));
                }
            }
        }
        if let Some(note) = self.beyond_note() {
            out.push_str(&note);
            out.push('\n');
        }
        if let Some(note) = self.unattributed_note() {
            out.push_str(&note);
            out.push('\n');
        }
        out
    }
}

/// `10:00:01.123` of an RFC 3339 time (the date is the session's).
fn clock_of(rfc3339: &str) -> &str {
    rfc3339
        .split_once('T')
        .map_or(rfc3339, |(_, time)| time.get(..12).unwrap_or(time))
}

#[cfg(test)]
mod tests;
