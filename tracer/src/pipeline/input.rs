//! What a source hands the pipeline, in order. A recording is a sequence of these, so the
//! variants are exactly what a replay needs to rebuild a live session's journeys.

use std::{net::Ipv4Addr, sync::Arc};

use serde::{Deserialize, Serialize};

use super::counters::SourceCounters;
use crate::{
    drop_reason::DropReasons,
    journey::{
        counted::HopCounts,
        explain::Followed,
        model::Journey,
        observation::{IpProto, Observation},
    },
    k8s::ClusterModel,
    topology::Topology,
};

/// What a session follows, fixed for its whole run: which addresses are FROM and TO (to
/// tell requests from replies), the user's port/protocol filters, and the clock offset that
/// turns kernel times into wall-clock times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// "Pod default/nettest (10.244.102.137, node cpu2) → Service default/nginx-test (…)".
    pub following: String,
    /// Where names came from, e.g. "Kubernetes API https://… (context tracer-lab)".
    pub names_from: String,
    pub from_ips: Vec<Ipv4Addr>,
    pub to_ips: Vec<Ipv4Addr>,
    #[serde(default)]
    pub filter: JourneyFilter,
    /// Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds, measured once at the start
    /// (an `i64`: serde cannot flatten wider integers into the recording's META).
    pub wall_offset_ns: i64,
    /// The recording kernel's boot (`/proc/sys/kernel/random/boot_id`): sessions with the
    /// same one share CLOCK_MONOTONIC and namespace cookies exactly, so a merge of their
    /// recordings needs no clock estimate. Absent in recordings from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The one node this session traced (`tracer agent --node`), or none: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How its TC programs were attached (`tcx` or `netlink`); absent in recordings from
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
    /// One followed packet in `2^sample_shift` was traced hop by hop and the rest counted
    /// (`follow --sample`); 0 (absent): every packet was traced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_shift: u8,
}

fn is_zero(value: &u8) -> bool {
    *value == 0
}

impl Session {
    pub fn followed(&self) -> Followed {
        Followed {
            from: self.from_ips.clone(),
            to: self.to_ips.clone(),
            sample_shift: self.sample_shift,
        }
    }
}

/// The user's `--port` and `--proto`: which journeys a session shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyFilter {
    pub port: Option<u16>,
    pub protocol: Option<IpProto>,
}

impl JourneyFilter {
    /// Whether a journey passes: its protocol, and a port it used at any hop (the client's
    /// port survives NAT, a Service's port becomes the endpoint's).
    pub fn wants(&self, journey: &Journey) -> bool {
        if let Some(protocol) = self.protocol
            && journey.protocol != protocol
        {
            return false;
        }
        let Some(port) = self.port else {
            return true;
        };
        let touches = |e: &crate::journey::model::Endpoints| e.sport == port || e.dport == port;
        touches(&journey.original)
            || journey
                .hops
                .iter()
                .filter_map(|h| h.packet.as_ref())
                .any(touches)
    }

    /// Whether a counted place may be one of the journeys shown: its protocol, and the
    /// port at that hop. (The kernel counts every packet between the followed addresses;
    /// the user's filter applies in userspace.)
    pub fn wants_tuple(&self, tuple: &crate::journey::observation::Tuple) -> bool {
        self.protocol.is_none_or(|p| p == tuple.proto)
            && self
                .port
                .is_none_or(|port| tuple.sport == port || tuple.dport == port)
    }

    pub fn is_empty(&self) -> bool {
        self.port.is_none() && self.protocol.is_none()
    }
}

/// One step of a session, as a source produces it and a recording keeps it.
#[derive(Debug, Clone)]
pub enum Input {
    /// First: what the session follows.
    Session(Arc<Session>),
    /// The cluster's names, from `since_ns` (CLOCK_MONOTONIC) on, until the next version.
    Cluster {
        since_ns: u64,
        names: Arc<ClusterModel>,
    },
    /// The namespaces, interfaces, routes and kube-proxy rules, from `since_ns` on.
    Topology {
        since_ns: u64,
        topology: Arc<Topology>,
    },
    /// The names of the kernel's drop reasons (the recording kernel's, in a replay).
    DropReasons(Arc<DropReasons>),
    /// Observations read at `now_ns` (CLOCK_MONOTONIC): packets quiet since
    /// `now_ns - CLOSE_AFTER_NS` are complete.
    Observations {
        now_ns: u64,
        batch: Vec<Observation>,
    },
    /// The source's running totals of what it could not hand over.
    Counters(SourceCounters),
    /// A sampling source's running totals of the packets its TC hooks counted, per place
    /// (`journey::counted`), read at `at_ns`.
    HopCounts { at_ns: u64, counts: Arc<HopCounts> },
    /// Something the user must know about the session at this point (the cluster went
    /// away, interfaces vanished, …).
    Notice { at_ns: u64, text: String },
}
