//! Exit statuses, documented in `tracer --help` and README.md, and how a failure maps to
//! one ([`status_of`]) and is worded ([`message`]).

use crate::{files::FileError, k8s::ResolveError};

pub const SUCCESS: i32 = 0;
/// A runtime failure.
pub const FAILURE: i32 = 1;
/// Invalid usage: clap's own status, also used for a malformed or meaningless argument
/// (`999.1.1.1`, the same endpoint twice) and a refused output file.
pub const USAGE: i32 = 2;
/// A needed privilege or capability is missing.
pub const NO_PRIVILEGE: i32 = 3;
/// This kernel cannot support the command (`doctor`: `follow` cannot work here).
pub const KERNEL_UNSUPPORTED: i32 = 4;

/// An error that means "run this with more privileges"; `main` exits with [`NO_PRIVILEGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingPrivilege(pub String);

/// An error that means "this kernel cannot do it" (the lab's IPVS mode on a kernel without
/// IPVS); `main` exits with [`KERNEL_UNSUPPORTED`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KernelUnsupported(pub String);

/// A malformed or meaningless argument found after parsing (clap's own checks exit 2
/// before this); `main` exits with [`USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit status for a failed command: the first cause in the chain that says what kind
/// of failure it is, else [`FAILURE`].
pub fn status_of(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if cause.is::<MissingPrivilege>() {
            return NO_PRIVILEGE;
        }
        if cause.is::<KernelUnsupported>() {
            return KERNEL_UNSUPPORTED;
        }
        if cause.is::<Usage>()
            || cause
                .downcast_ref::<FileError>()
                .is_some_and(FileError::is_refusal)
            || cause
                .downcast_ref::<ResolveError>()
                .is_some_and(ResolveError::is_usage)
        {
            return USAGE;
        }
    }
    FAILURE
}

/// True when the command failed only because its reader went away (`tracer … | head`):
/// not an error worth a message, as ripgrep treats it.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            cause
                .downcast_ref::<FileError>()
                .and_then(FileError::io_error)
        });
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each said once: a cause whose text the line
/// already holds (a message that embeds its source, as `"cannot read {path}: {source}"`
/// does) is not repeated.
pub fn message(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    /// Like errors that put their source in their own message.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Embeds {
        path: String,
        source: io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let error = anyhow::Error::new(Embeds {
            path: "/x.trace".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        });
        assert_eq!(
            message(&error),
            "cannot read /x.trace: No such file or directory (os error 2)"
        );
        // Context that does not repeat its cause still shows it.
        let error = anyhow::Error::new(io::Error::from_raw_os_error(libc::EACCES))
            .context("cannot open the lab state");
        assert_eq!(
            message(&error),
            "cannot open the lab state: Permission denied (os error 13)"
        );
    }

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        let refused = anyhow::Error::new(FileError::Exists {
            path: "r.trace".into(),
        });
        assert_eq!(status_of(&refused), USAGE);
        let io = anyhow::Error::new(FileError::io(
            "write",
            std::path::Path::new("/dev/full"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        ));
        assert_eq!(status_of(&io), FAILURE);
        assert!(!is_broken_pipe(&io));
        let privilege =
            anyhow::Error::new(MissingPrivilege("needs CAP_BPF".into())).context("follow");
        assert_eq!(status_of(&privilege), NO_PRIVILEGE);
        let kernel = anyhow::Error::new(KernelUnsupported("no IPVS".into()));
        assert_eq!(status_of(&kernel), KERNEL_UNSUPPORTED);
        let usage = anyhow::Error::new(Usage("unknown scenario `x`".into()));
        assert_eq!(status_of(&usage), USAGE);
        let bad_ip = anyhow::Error::new(ResolveError::BadSpec {
            spec: "999.1.1.1".into(),
            reason: "not an IPv4 address".into(),
        });
        assert_eq!(status_of(&bad_ip), USAGE);
        let pipe = anyhow::Error::new(FileError::io(
            "write",
            std::path::Path::new("-"),
            io::Error::from(io::ErrorKind::BrokenPipe),
        ));
        assert!(is_broken_pipe(&pipe));
        assert!(is_broken_pipe(
            &anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("printing")
        ));
    }
}
