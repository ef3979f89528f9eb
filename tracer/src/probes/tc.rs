//! Attaching the TC classifiers (`tc_ingress`, `tc_egress`) to an interface.
//!
//! TCX links (kernel 6.6+) are preferred: they need no clsact qdisc and the kernel removes
//! them when the last file descriptor closes, so a tracer killed with SIGKILL leaves nothing
//! attached. Older kernels get a clsact qdisc and netlink filters, which outlive the
//! process; `tracer` then creates the qdisc only where none exists and removes only what it
//! added.

use aya::{
    Ebpf,
    programs::{LinkOrder, SchedClassifier, TcAttachType, tc, tc::SchedClassifierLinkId},
};
use tracer_common::programs;

use crate::ebpf::LoadError;

/// Which side of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn program(self) -> &'static str {
        match self {
            Self::Ingress => programs::TC_INGRESS,
            Self::Egress => programs::TC_EGRESS,
        }
    }

    fn attach_type(self) -> TcAttachType {
        match self {
            Self::Ingress => TcAttachType::Ingress,
            Self::Egress => TcAttachType::Egress,
        }
    }
}

/// How a classifier is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// A TCX link: nothing outlives the process.
    Tcx,
    /// A netlink filter under a clsact qdisc.
    Netlink,
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, LoadError> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    if program.fd().is_err() {
        program.load().map_err(LoadError::program(name))?;
    }
    Ok(program)
}

/// Attaches the classifier for `direction` to `interface` in the calling thread's network
/// namespace (see [`crate::netns`]). The link lives as long as `ebpf`. Returns whether a
/// clsact qdisc had to be created (netlink mode only), so the caller removes only that.
pub fn attach(
    ebpf: &mut Ebpf,
    interface: &str,
    direction: Direction,
    mode: AttachMode,
) -> Result<bool, LoadError> {
    let name = direction.program();
    let program = classifier(ebpf, name)?;
    let mut created_qdisc = false;
    let options = match mode {
        AttachMode::Tcx => tc::TcAttachOptions::TcxOrder(LinkOrder::default()),
        AttachMode::Netlink => {
            match tc::qdisc_add_clsact(interface) {
                Ok(()) => created_qdisc = true,
                // Already there (ours or someone else's): use it, never replace it.
                Err(tc::TcError::AlreadyAttached) => {}
                Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(err) => return Err(LoadError::program(name)(err.into())),
            }
            tc::TcAttachOptions::Netlink(tc::NlOptions::default())
        }
    };
    program
        .attach_with_options(interface, direction.attach_type(), options)
        .map_err(LoadError::program(name))?;
    Ok(created_qdisc)
}

/// Attaches the classifier for `direction` to `interface` as a TCX link (in the calling
/// thread's namespace) and returns the link's id, so that [`detach`] can remove this one
/// link later (an interface that went away) while the others stay.
pub fn attach_tcx(
    ebpf: &mut Ebpf,
    interface: &str,
    direction: Direction,
) -> Result<SchedClassifierLinkId, LoadError> {
    let name = direction.program();
    classifier(ebpf, name)?
        .attach_with_options(
            interface,
            direction.attach_type(),
            tc::TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(LoadError::program(name))
}

/// Removes one link made by [`attach_tcx`]. A TCX link is ours alone: this closes it and
/// touches no qdisc or filter. It works in any namespace and after the interface is gone
/// (the kernel has then already unhooked it; this frees the link).
pub fn detach(
    ebpf: &mut Ebpf,
    direction: Direction,
    link: SchedClassifierLinkId,
) -> Result<(), LoadError> {
    let name = direction.program();
    classifier(ebpf, name)?
        .detach(link)
        .map_err(LoadError::program(name))
}
