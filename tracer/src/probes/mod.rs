//! Userspace halves of the kernel programs: one module per hook, mirroring
//! `tracer-ebpf/src/`, each knowing how to load and attach its program.

pub mod kfree_skb;
pub mod nat;
pub mod route;
pub mod tc;
