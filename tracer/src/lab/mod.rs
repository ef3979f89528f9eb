//! `tracer lab`: the seed's 3-node cluster rebuilt from network namespaces on this machine.
//!
//! `spec` describes the cluster as data; the other modules derive from it.

pub mod spec;
