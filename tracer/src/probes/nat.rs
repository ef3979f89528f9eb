//! Attaching the NAT hook: `nf_nat_manip_pkt`, called each time netfilter rewrites a
//! packet's addresses (see `tracer-ebpf/src/nat.rs`). fentry is tried first, then kprobe —
//! by trying, never by version: fentry needs the function in vmlinux's BTF (aya attaches
//! fentry to vmlinux functions only, and `nf_nat` is a module on most distributions) and a
//! kernel that accepts fentry; kprobe needs `CONFIG_KPROBES` and the module loaded. Where
//! neither attaches (this project's development machine has neither), NAT hops are
//! inferred from the headers before and after the rewrite.

use aya::{
    Btf, Ebpf,
    programs::{FEntry, KProbe},
};
use tracer_common::programs;

use crate::{ebpf::LoadError, kernel_layout::KernelOffsets};

/// The kernel function that rewrites a packet for NAT.
pub const FUNCTION: &str = "nf_nat_manip_pkt";

/// How the NAT hook is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatHook {
    Fentry,
    Kprobe,
}

impl NatHook {
    /// The program's name, as the kernel and `tracer doctor` show it.
    pub const fn program(self) -> &'static str {
        match self {
            Self::Fentry => programs::NAT_FENTRY,
            Self::Kprobe => programs::NAT_KPROBE,
        }
    }

    /// `fentry` or `kprobe`.
    pub const fn attach_type(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
        }
    }
}

/// Why the NAT hook cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum NatHookError {
    #[error(
        "conntrack's struct nf_conn is not in this kernel's BTF (nf_conntrack not loaded yet, or not laid out as expected)"
    )]
    NoOffsets,
    #[error(
        "fentry: {}; kprobe: {}",
        crate::doctor::explain(.fentry),
        crate::doctor::explain(.kprobe)
    )]
    Refused {
        fentry: Box<LoadError>,
        kprobe: Box<LoadError>,
    },
}

pub fn attach(
    ebpf: &mut Ebpf,
    btf: &Btf,
    offsets: &KernelOffsets,
) -> Result<NatHook, NatHookError> {
    if offsets.nat.is_none() {
        return Err(NatHookError::NoOffsets);
    }
    let fentry = match attach_fentry(ebpf, btf) {
        Ok(()) => return Ok(NatHook::Fentry),
        Err(e) => e,
    };
    attach_kprobe(ebpf)
        .map(|()| NatHook::Kprobe)
        .map_err(|kprobe| NatHookError::Refused {
            fentry: Box::new(fentry),
            kprobe: Box::new(kprobe),
        })
}

fn attach_fentry(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), LoadError> {
    let name = programs::NAT_FENTRY;
    let program: &mut FEntry = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    program
        .load(FUNCTION, btf)
        .map_err(LoadError::program(name))?;
    program.attach().map_err(LoadError::program(name))?;
    Ok(())
}

fn attach_kprobe(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let name = programs::NAT_KPROBE;
    let program: &mut KProbe = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    program.load().map_err(LoadError::program(name))?;
    program
        .attach(FUNCTION, 0)
        .map_err(LoadError::program(name))?;
    Ok(())
}
