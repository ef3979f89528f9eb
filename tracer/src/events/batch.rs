//! Whole per-CPU maps read in a few system calls. aya's iterators make one call per array
//! index and two per hash entry; a sampling session reads its 1,024 slots and every counted
//! hop in `HOP_COUNTS` (up to 131,072, `ebpf::hop_counts_capacity`) every second, which with
//! 16,384 of them cost about 6% of a core.
//! `BPF_MAP_LOOKUP_BATCH` (Linux 5.6; hash, LRU hash and array maps, per-CPU or not) copies
//! a chunk of entries per call. Where the kernel refuses it, the caller iterates instead.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_int = 24;

/// Entries asked for per call: a hash map answers `ENOSPC` when one of its buckets holds
/// more, and is then asked again with room for twice as many.
const CHUNK: usize = 1024;

/// The `batch` member of the kernel's `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `each` with every key of the per-CPU map behind `map` and its values, one per
/// possible CPU (`cpus`). The batch token is 4 bytes for every map type this reads: the
/// bucket of a hash map, the index of an array.
pub fn for_each_per_cpu<K: Pod + Default, V: Pod + Default>(
    map: BorrowedFd<'_>,
    cpus: usize,
    mut each: impl FnMut(K, &[V]),
) -> io::Result<()> {
    // The kernel lays per-CPU values out 8-byte aligned, one after the other.
    const { assert!(size_of::<V>().is_multiple_of(8)) };
    let mut chunk = CHUNK;
    let mut keys = vec![K::default(); chunk];
    let mut values = vec![V::default(); chunk * cpus];
    let (mut token, mut next) = (0u32, 0u32);
    let mut started = false;
    loop {
        let mut attr = BatchAttr {
            in_batch: if started { &raw const token as u64 } else { 0 },
            out_batch: &raw mut next as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: `attr` points at buffers sized for `count` keys and `count * cpus` values
        // and at two live tokens; the kernel writes nothing else.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let error = (result < 0).then(io::Error::last_os_error);
        match error.as_ref().and_then(io::Error::raw_os_error) {
            Some(libc::ENOSPC) if chunk < 1 << 20 => {
                chunk *= 2;
                keys.resize(chunk, K::default());
                values.resize(chunk * cpus, V::default());
                continue;
            }
            // The last chunk (maybe empty) comes with ENOENT.
            None | Some(libc::ENOENT) => {}
            Some(_) => return Err(error.unwrap_or_else(io::Error::last_os_error)),
        }
        let filled = (attr.count as usize).min(chunk);
        for (key, per_cpu) in keys[..filled].iter().zip(values.chunks_exact(cpus)) {
            each(*key, per_cpu);
        }
        if error.is_some() {
            return Ok(());
        }
        token = next;
        started = true;
    }
}
