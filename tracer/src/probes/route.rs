//! Attaching `tp_btf/fib_table_lookup`: the routing decision for each received packet the
//! TC ingress hook saw (see `tracer-ebpf/src/route.rs`). Where it attaches, route hops are
//! observed; where it does not (no such tracepoint, or its structs not in BTF), they are
//! inferred from the node's routing table.

use aya::{Btf, Ebpf};
use tracer_common::programs;

use crate::{
    ebpf::{self, LoadError},
    kernel_layout::KernelOffsets,
};

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
    ebpf::attach_btf_tracepoint(ebpf, btf, programs::FIB_TABLE_LOOKUP, "fib_table_lookup")?;
    Ok(())
}
