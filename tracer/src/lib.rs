//! `tracer`: follow a Kubernetes Pod's packets hop by hop with eBPF.
//!
//! Layout: `cli` parses; `doctor` finds out what the kernel allows; `ebpf` holds the
//! embedded object and loads it; `probes` attaches each kernel program; `events` reads what
//! they emit; `btf`, `kernel_layout` and `drop_reason` read the running kernel's types;
//! `netns` runs work inside other network namespaces; `caps` reads capabilities.

pub mod btf;
pub mod caps;
pub mod cli;
pub mod doctor;
pub mod drop_reason;
pub mod ebpf;
pub mod events;
pub mod exit;
pub mod export;
pub mod follow;
pub mod journey;
pub mod k8s;
pub mod kernel_layout;
pub mod lab;
pub mod netns;
pub mod output;
pub mod probes;
pub mod record;
pub mod replay;
pub mod topology;
pub mod tui;
