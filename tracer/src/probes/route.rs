//! Attaching `tp_btf/fib_table_lookup`: the routing decision for each received packet the
//! TC ingress hook saw (see `tracer-ebpf/src/route.rs`). Where it attaches, route hops are
//! observed; where it does not (no such tracepoint, or its structs not in BTF), they are
//! inferred from the node's routing table.

use aya::{Btf, Ebpf, programs::BtfTracePoint};
use tracer_common::programs;

use crate::{ebpf::LoadError, kernel_layout::KernelOffsets};

/// Why the route hook cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum RouteHookError {
    #[error("struct flowi4 or fib_nh_common is not described in this kernel's BTF")]
    NoOffsets,
    #[error(transparent)]
    Load(#[from] LoadError),
}

pub fn attach(ebpf: &mut Ebpf, btf: &Btf, offsets: &KernelOffsets) -> Result<(), RouteHookError> {
    if offsets.route.is_none() {
        return Err(RouteHookError::NoOffsets);
    }
    let name = programs::FIB_TABLE_LOOKUP;
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    program
        .load("fib_table_lookup", btf)
        .map_err(LoadError::program(name))?;
    program.attach().map_err(LoadError::program(name))?;
    Ok(())
}
