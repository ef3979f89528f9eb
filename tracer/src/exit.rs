//! Exit statuses, documented in `tracer --help` and README.md.

pub const SUCCESS: i32 = 0;
/// A runtime failure.
pub const FAILURE: i32 = 1;
/// Invalid usage (clap's own status).
pub const USAGE: i32 = 2;
/// A needed privilege or capability is missing.
pub const NO_PRIVILEGE: i32 = 3;
/// This kernel cannot support the command (`doctor`: `follow` cannot work here).
pub const KERNEL_UNSUPPORTED: i32 = 4;

/// An error that means "run this with more privileges"; `main` exits with [`NO_PRIVILEGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingPrivilege(pub String);
