//! Session recordings: what `tracer follow --record FILE` writes and `tracer replay` /
//! `tracer export` read. The format is documented in `docs/recording-format.md`.
//!
//! A recording is the sequence of inputs a live session fed its pipeline
//! (`crate::pipeline::Input`): the *raw observations* (not finished journeys), so a better
//! correlator later explains old recordings better, each batch with the time it was read;
//! and everything needed to name them without the cluster or the machine, each version
//! with the time from which it holds — the cluster's names (the rows the session's
//! packets need), every traced namespace's interfaces, addresses, routes, MTUs and
//! kube-proxy rules, the kernel's drop-reason names, and the counters of what was lost.
//! Records carry a sync mark, their length and a CRC-32, and are appended as the session
//! goes: a file cut by SIGKILL or a full disk is read up to its last complete record, and a
//! damaged record is skipped to the next intact one, the reader saying where and why.

pub mod codec;
pub mod compact;
pub mod crc32;
pub mod format;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;
