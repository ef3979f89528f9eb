//! The embedded eBPF object and how it is loaded.
//!
//! `build.rs` compiles `tracer-ebpf` and this module embeds the result, so the binary needs
//! no files at run time. Loading patches the load-time globals (the trace-everything switch
//! and the kernel struct offsets from BTF) before the verifier sees the programs.

use aya::{Ebpf, EbpfLoader, maps::MapError, programs::ProgramError};
use thiserror::Error;
use tracer_common::globals;

use crate::kernel_layout::KernelOffsets;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "this tracer binary was built without its eBPF programs (the eBPF toolchain was \
         missing at build time); run scripts/setup.sh and rebuild"
    )]
    NotBuilt,
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the eBPF object has no program {0}")]
    NoProgram(&'static str),
    #[error("the eBPF object has no map {0}")]
    NoMap(&'static str),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("cannot record this run in {dir} (needed to clean up its netlink filters): {source}")]
    RunRecord {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

impl LoadError {
    pub fn program(name: &'static str) -> impl FnOnce(ProgramError) -> Self {
        move |source| Self::Program { name, source }
    }

    pub fn map(name: &'static str) -> impl FnOnce(MapError) -> Self {
        move |source| Self::Map { name, source }
    }
}

/// The embedded object, or why there is none.
pub fn object() -> Result<&'static [u8], LoadError> {
    if OBJECT.is_empty() {
        Err(LoadError::NotBuilt)
    } else {
        Ok(OBJECT)
    }
}

/// What to patch into the programs before loading them.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Emit every IPv4 packet instead of only the followed addresses (tests and doctor).
    pub trace_all: bool,
    /// Needed by the tracepoint programs; without it they keep zero offsets and must not be
    /// attached.
    pub offsets: Option<KernelOffsets>,
    /// The programs' own diagnostics (aya-log), read by
    /// [`crate::follow::kernel_log::KernelLog`]; off, they cost nothing.
    pub kernel_log: bool,
    /// Trace one followed packet in `2^sample_shift` hop by hop and count the rest
    /// (`tracer_common::sample`); 0: trace every one.
    pub sample_shift: u8,
}

/// Entries of the `HOP_COUNTS` map when sampling, for `cpus` possible CPUs: as many as 16 MiB
/// of kernel memory holds (the map is allocated whole when created), and never fewer than
/// 16,384, the size the kernel object declares. An entry is its 32-byte key, about 64 bytes
/// of hash-table element and LRU node, and a 16-byte count per CPU: a 2-CPU node gets
/// 131,072 entries, where a busy node's connections would otherwise evict each other's
/// counts before they are read, and a 64-CPU node the 16,384 it had (18 MiB).
pub fn hop_counts_capacity(cpus: usize) -> u32 {
    const BUDGET: usize = 16 << 20;
    const ENTRY: usize = 32 + 64;
    const COUNT: usize = size_of::<tracer_common::HopCount>();
    let entries = BUDGET / (ENTRY + COUNT * cpus.max(1));
    u32::try_from(entries.clamp(16_384, 131_072)).unwrap_or(16_384)
}

/// Creates the maps and parses the programs; programs are loaded into the kernel
/// one by one when attached, so a kernel that refuses one type still runs the rest.
pub fn load(options: &LoadOptions) -> Result<Ebpf, LoadError> {
    let object = object()?;
    let trace_all = u8::from(options.trace_all);
    let mut loader = EbpfLoader::new();
    loader.override_global(globals::TRACE_ALL, &trace_all, true);
    loader.override_global(globals::SAMPLE_SHIFT, &options.sample_shift, true);
    if options.sample_shift == 0 {
        // Nothing is counted: no memory for it.
        loader.map_max_entries(tracer_common::maps::HOP_COUNTS, 1);
        loader.map_max_entries(tracer_common::maps::HOP_SLOTS, 1);
        loader.map_max_entries(tracer_common::maps::SLOT_IDLE, 1);
    } else if let Ok(cpus) = aya::util::nr_cpus() {
        loader.map_max_entries(tracer_common::maps::HOP_COUNTS, hop_counts_capacity(cpus));
    }
    // aya-log's level is "everything" unless set: always set it.
    let log_level = crate::follow::kernel_log::level(options.kernel_log);
    loader.override_global(aya_log::LEVEL, &log_level, true);
    if let Some(offsets) = &options.offsets {
        offsets.apply(&mut loader);
    }
    Ok(loader.load(object)?)
}

/// Loads the BTF tracepoint program `name` for the kernel's `tracepoint` and attaches it;
/// the link lives as long as `ebpf`.
pub fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    name: &'static str,
    tracepoint: &str,
) -> Result<(), LoadError> {
    let program: &mut aya::programs::BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    program
        .load(tracepoint, btf)
        .map_err(LoadError::program(name))?;
    program.attach().map_err(LoadError::program(name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hop_counts_capacity;

    #[test]
    fn the_table_of_hops_takes_what_its_memory_budget_holds_within_bounds() {
        assert_eq!(hop_counts_capacity(1), 131_072);
        assert_eq!(hop_counts_capacity(2), 131_072);
        assert_eq!(hop_counts_capacity(8), 74_898);
        assert_eq!(hop_counts_capacity(64), 16_384);
        assert_eq!(hop_counts_capacity(1024), 16_384);
        // More CPUs never get more entries.
        for cpus in 1..128 {
            assert!(hop_counts_capacity(cpus) >= hop_counts_capacity(cpus + 1));
        }
    }
}
