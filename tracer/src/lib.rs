//! `tracer`: follow a Kubernetes Pod's packets hop by hop with eBPF.
//!
//! Layout: `cli` parses; `follow` plans, attaches and runs a live session; `pipeline` is
//! the one path from observations to journeys that live, replay and export share (sources,
//! the `Correlator`, counters); `k8s` names things (watch caches or a cluster file);
//! `topology` reads namespaces, interfaces, routes and kube-proxy rules from the kernel;
//! `journey` turns observations into named journeys (`identity` is the packet-identity
//! rule); `output`, `tui`, `record`, `replay` and `export` are where journeys go; `doctor`
//! finds out what the kernel allows; `ebpf`, `probes` and
//! `events` load, attach and read the kernel programs; `btf`, `kernel_layout` and
//! `drop_reason` read the running kernel's types; `netns` (the `tracer-netns` crate) runs
//! work in other network namespaces; `caps` reads capabilities; `clock` is the kernel's
//! clock; `timeline` keeps what changes during a session by time; `files` creates the files
//! a user names (recordings, exports) without harming what is there; `exit` holds the exit
//! statuses and how an error maps to one.
//!
//! The built-in lab is the `tracer-lab` crate: `cli` embeds its arguments as `tracer lab`
//! and `main` hands them over; nothing else here knows about it. Product code reaches the
//! lab only as it reaches any cluster: through a kubeconfig and the kernel's namespaces.

pub mod btf;
pub mod caps;
pub mod cli;
pub mod clock;
pub mod doctor;
pub mod drop_reason;
pub mod ebpf;
pub mod events;
pub mod exit;
pub mod export;
pub mod files;
pub mod flows;
pub mod follow;
pub mod journey;
pub mod k8s;
pub mod kernel_layout;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod record;
pub mod replay;
pub mod timeline;
pub mod topology;
pub mod tui;

/// Running work in other network namespaces (a crate of its own, shared with the lab).
pub use tracer_netns as netns;
