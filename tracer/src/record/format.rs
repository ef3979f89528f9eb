//! Record framing and the typed contents of each record kind.

use serde::{Deserialize, Serialize};

use crate::{k8s::ClusterObjects, topology::Topology};

/// First 8 bytes of every recording.
pub const MAGIC: &[u8; 8] = b"TRACEREC";
/// Bumped on any incompatible change; readers refuse newer versions.
pub const FORMAT_VERSION: u32 = 1;
pub const FILE_HEADER_LEN: usize = 16;
/// A record longer than this is corruption, not data.
pub const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;

pub mod kind {
    pub const META: u8 = 1;
    pub const CLUSTER: u8 = 2;
    pub const TOPOLOGY: u8 = 3;
    pub const DROP_REASONS: u8 = 4;
    pub const OBSERVATIONS: u8 = 5;
    pub const LOSS: u8 = 6;
    pub const END: u8 = 7;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub tracer_version: String,
    pub created_at: String,
    pub hostname: String,
    /// The command line that made the recording.
    pub command: Vec<String>,
    /// "nettest (…) → svc/nginx-test (…)".
    pub following: String,
    /// Where names came from at recording time.
    pub names_from: String,
    /// Wall-clock minus CLOCK_MONOTONIC nanoseconds at recording time.
    pub wall_offset_ns: i128,
    /// Addresses the kernel filter followed, and which side was FROM.
    pub from_ips: Vec<std::net::Ipv4Addr>,
    pub to_ips: Vec<std::net::Ipv4Addr>,
    /// Payload bytes kept per packet: 0, headers only (tracer records parsed headers).
    pub snap_len: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// Events the kernel could not hand over (ring buffer full), so far.
    pub ringbuf_full: u64,
    pub parse_failed: u64,
    /// Observation batches the recorder could not keep up with (never expected).
    pub recorder_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub observations: u64,
}

#[derive(Debug, Clone)]
pub enum Record {
    Meta(Box<Meta>),
    Cluster(Box<ClusterObjects>),
    Topology(Box<Topology>),
    DropReasons(Vec<(u32, String)>),
    Observations(Vec<crate::journey::observation::Observation>),
    Loss(Loss),
    End(End),
    /// A record kind this version does not know (written by a newer minor version).
    Unknown(u8),
}
