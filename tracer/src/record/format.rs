//! Record framing and the typed contents of each record kind (docs/recording-format.md).

use serde::{Deserialize, Serialize};

use crate::{
    journey::{counted::HopCounts, observation::Observation},
    k8s::{ClusterObjects, model::ModelRows},
    pipeline::{Session, counters::SourceCounters},
    topology::Topology,
};

/// First 8 bytes of every recording.
pub const MAGIC: &[u8; 8] = b"TRACEREC";
/// The version this tracer writes. Readers refuse newer versions and read every older one.
pub const FORMAT_VERSION: u32 = 4;
pub const FILE_HEADER_LEN: usize = 16;
/// Every version-2 record starts with these bytes: a reader that meets a damaged record
/// looks for the next place they occur where an intact record follows.
pub const SYNC: [u8; 4] = [0xC5, b'T', b'R', 0x5A];
/// Sync, length, kind.
pub const RECORD_HEAD_LEN: usize = 9;
/// A record longer than this is corruption, not data: the writer never writes one (it
/// splits large context into several records) and the reader refuses one.
pub const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;
/// Observations per record at most: damage to one record costs only these.
pub const OBSERVATIONS_PER_RECORD: usize = 128;

pub mod kind {
    pub const META: u8 = 1;
    pub const CLUSTER: u8 = 2;
    pub const TOPOLOGY: u8 = 3;
    pub const DROP_REASONS: u8 = 4;
    pub const OBSERVATIONS: u8 = 5;
    /// Version 1 called it LOSS.
    pub const COUNTERS: u8 = 6;
    pub const END: u8 = 7;
    pub const NAMES: u8 = 8;
    pub const NOTICE: u8 = 9;
    /// A sampling session's counts per place (`journey::counted`).
    pub const HOP_COUNTS: u8 = 10;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub tracer_version: String,
    pub created_at: String,
    pub hostname: String,
    /// The command line that made the recording.
    pub command: Vec<String>,
    /// Payload bytes kept per packet: 0, headers only (tracer records parsed headers).
    pub snap_len: u32,
    /// What the session followed (its fields sit at the top level of the JSON, where
    /// version 1 put them).
    #[serde(flatten)]
    pub session: Session,
}

/// A version of the cluster's names from `since_ns` on (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub since_ns: u64,
    pub rows: ModelRows,
}

/// A version of the topology from `since_ns` on; `more`: the next TOPOLOGY record carries
/// more namespaces of the same version (a large topology is split).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopologyRecord {
    pub since_ns: u64,
    pub topology: Topology,
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub at_ns: u64,
    pub text: String,
}

/// Running totals of packets counted per place, read at `at_ns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopCountsRecord {
    pub at_ns: u64,
    #[serde(flatten)]
    pub counts: HopCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub observations: u64,
}

#[derive(Debug, Clone)]
pub enum Record {
    Meta(Box<Meta>),
    /// Version 1: the cluster's objects, holding from after the newest observation read.
    ClusterObjects(Box<ClusterObjects>),
    /// A new version of the cluster's names.
    Cluster(Box<ClusterRecord>),
    /// More names for the newest version (what the session's packets needed).
    Names(Box<ModelRows>),
    /// Version 1 topologies carry no time (`since_ns` 0; the reader's caller decides).
    Topology(Box<TopologyRecord>),
    DropReasons(Vec<(u32, String)>),
    /// `now_ns`: when they were read (version 2).
    Observations {
        now_ns: Option<u64>,
        batch: Vec<Observation>,
    },
    Counters(SourceCounters),
    Notice(NoticeRecord),
    HopCounts(HopCountsRecord),
    End(End),
    /// A record kind this version does not know (written by a newer minor version).
    Unknown(u8),
}
