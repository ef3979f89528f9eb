//! Attaching `tp_btf/kfree_skb`: every packet the kernel frees with a drop reason.

use aya::{Btf, Ebpf, programs::BtfTracePoint};
use tracer_common::programs;

use crate::ebpf::LoadError;

pub fn attach(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), LoadError> {
    let name = programs::KFREE_SKB;
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    program
        .load("kfree_skb", btf)
        .map_err(LoadError::program(name))?;
    program.attach().map_err(LoadError::program(name))?;
    Ok(())
}
