//! Attaching `tp_btf/kfree_skb`: every packet the kernel frees as a drop. From Linux 5.17
//! the tracepoint carries the drop reason; before, it carries only the packet (and the
//! caller's address). The reason-reading program is tried first and the verifier refuses
//! it where the argument does not exist; then the reason-less one is attached, and its
//! drops say "reason unknown on this kernel". Chosen by trying, never by version.

use aya::{Btf, Ebpf};
use clap::ValueEnum;
use tracer_common::programs;

use crate::ebpf::{self, LoadError};

/// Which drop program to use (`follow --drop-hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DropHookChoice {
    /// The one with the reason where the kernel offers it, the reason-less one otherwise.
    #[default]
    Auto,
    /// Only the one with the reason.
    Reason,
    /// Only the reason-less one, as on kernels before 5.17 (to test that path anywhere).
    NoReason,
}

/// The drop program attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropHook {
    /// `kfree_skb`: drops with the kernel's reason.
    WithReason,
    /// `kfree_skb_no_reason`: drops without one.
    NoReason,
}

impl DropHook {
    /// The program's name, as the kernel and `tracer doctor` show it.
    pub const fn program(self) -> &'static str {
        match self {
            Self::WithReason => programs::KFREE_SKB,
            Self::NoReason => programs::KFREE_SKB_NO_REASON,
        }
    }

    /// What the hook tells about a drop.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::WithReason => "drops with their reason",
            Self::NoReason => "drops without their reason (reason unknown on this kernel)",
        }
    }
}

/// Attaches the drop program `choice` asks for; with `Auto`, the reason-less one when the
/// kernel refuses the other (the error of the first try is kept if both fail).
pub fn attach(ebpf: &mut Ebpf, btf: &Btf, choice: DropHookChoice) -> Result<DropHook, LoadError> {
    match choice {
        DropHookChoice::Reason => attach_one(ebpf, btf, DropHook::WithReason),
        DropHookChoice::NoReason => attach_one(ebpf, btf, DropHook::NoReason),
        DropHookChoice::Auto => attach_one(ebpf, btf, DropHook::WithReason)
            .or_else(|first| attach_one(ebpf, btf, DropHook::NoReason).map_err(|_| first)),
    }
}

fn attach_one(ebpf: &mut Ebpf, btf: &Btf, hook: DropHook) -> Result<DropHook, LoadError> {
    ebpf::attach_btf_tracepoint(ebpf, btf, hook.program(), "kfree_skb")?;
    Ok(hook)
}
