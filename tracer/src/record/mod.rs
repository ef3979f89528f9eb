//! Session recordings: what `tracer follow --record FILE` writes and `tracer replay` /
//! `tracer export` read. The format is documented in `docs/recording-format.md`.
//!
//! A recording keeps the *raw observations* (not finished journeys), so a better
//! correlator later explains old recordings better, plus everything needed to name them
//! without the cluster or the machine: the Kubernetes objects, every traced namespace's
//! interfaces, addresses, routes, MTUs and iptables rules, the kernel's drop-reason names,
//! and the loss counters. It is a sequence of self-checking records (length, type, payload,
//! CRC-32), appended as the session goes, so a file cut by SIGKILL or a full disk is read up
//! to its last complete record and the reader says where and why it stopped.

pub mod codec;
pub mod crc32;
pub mod format;
pub mod reader;
pub mod writer;
