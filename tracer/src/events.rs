//! Reading what the kernel programs emit: ring-buffer records decoded into owned
//! [`PacketEvent`]s, and the per-CPU loss counters summed.

use std::{io, os::fd::AsRawFd, time::Duration};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use thiserror::Error;
use tracer_common::{ABI_VERSION, LossCounters, PacketEvent, maps};

use crate::ebpf::LoadError;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {got} bytes, expected {expected}")]
    Size { got: usize, expected: usize },
    #[error("record written by ABI revision {0}, this tracer reads {ABI_VERSION}")]
    Abi(u8),
}

/// Decodes one ring-buffer record; checks its length and ABI revision first.
pub fn decode(record: &[u8]) -> Result<PacketEvent, DecodeError> {
    let expected = size_of::<PacketEvent>();
    if record.len() != expected {
        return Err(DecodeError::Size {
            got: record.len(),
            expected,
        });
    }
    // SAFETY: length checked; PacketEvent is plain old data valid for any bytes;
    // read_unaligned because ring-buffer records are only 8-byte aligned by contract.
    let event = unsafe { record.as_ptr().cast::<PacketEvent>().read_unaligned() };
    if event.header.abi != ABI_VERSION {
        return Err(DecodeError::Abi(event.header.abi));
    }
    Ok(event)
}

/// The userspace end of the `EVENTS` ring buffer.
pub struct EventStream {
    ring: RingBuf<MapData>,
    /// Records that failed to decode (a mismatched build, never expected).
    pub undecodable: u64,
}

impl EventStream {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        let map = ebpf
            .take_map(maps::EVENTS)
            .ok_or(LoadError::NoMap(maps::EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(LoadError::map(maps::EVENTS))?;
        Ok(Self {
            ring,
            undecodable: 0,
        })
    }

    /// Waits up to `timeout` for records to arrive; true if there may be some.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pollfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&raw mut pollfd, 1, millis) } {
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
            n => Ok(n > 0),
        }
    }

    /// Drains every record available now into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<PacketEvent>) {
        while let Some(record) = self.ring.next() {
            match decode(&record) {
                Ok(event) => out.push(event),
                Err(_) => self.undecodable += 1,
            }
        }
    }
}

/// Sums the per-CPU loss counters.
pub fn loss(ebpf: &Ebpf) -> Result<LossCounters, LoadError> {
    let map = ebpf.map(maps::LOSS).ok_or(LoadError::NoMap(maps::LOSS))?;
    let array =
        PerCpuArray::<_, LossCounters>::try_from(map).map_err(LoadError::map(maps::LOSS))?;
    let per_cpu = array.get(&0, 0).map_err(LoadError::map(maps::LOSS))?;
    Ok(per_cpu
        .iter()
        .fold(LossCounters::default(), |sum, c| LossCounters {
            ringbuf_full: sum.ringbuf_full + c.ringbuf_full,
            parse_failed: sum.parse_failed + c.parse_failed,
        }))
}

/// Adds addresses to the `FILTER_ADDRS` map: packets from or to them are emitted.
pub fn follow_addresses(ebpf: &mut Ebpf, addrs: &[std::net::Ipv4Addr]) -> Result<(), LoadError> {
    let map = ebpf
        .map_mut(maps::FILTER_ADDRS)
        .ok_or(LoadError::NoMap(maps::FILTER_ADDRS))?;
    let mut filter = aya::maps::HashMap::<_, u32, u8>::try_from(map)
        .map_err(LoadError::map(maps::FILTER_ADDRS))?;
    for addr in addrs {
        // Network byte order, as the programs read it from the packet.
        let key = u32::from_ne_bytes(addr.octets());
        filter
            .insert(key, 1, 0)
            .map_err(LoadError::map(maps::FILTER_ADDRS))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tracer_common::EventHeader;

    use super::*;

    fn bytes_of(event: &PacketEvent) -> Vec<u8> {
        // SAFETY: PacketEvent is plain old data without padding.
        unsafe {
            std::slice::from_raw_parts((&raw const *event).cast::<u8>(), size_of::<PacketEvent>())
                .to_vec()
        }
    }

    #[test]
    fn decodes_a_record_and_checks_length_and_abi() {
        let event = PacketEvent {
            header: EventHeader {
                abi: ABI_VERSION,
                kind: tracer_common::kind::TC_INGRESS,
                ..Default::default()
            },
            saddr: u32::from_ne_bytes([10, 0, 0, 1]),
            ..Default::default()
        };
        let bytes = bytes_of(&event);
        assert_eq!(decode(&bytes), Ok(event));
        assert_eq!(
            decode(&bytes[..10]),
            Err(DecodeError::Size {
                got: 10,
                expected: 96
            })
        );
        let mut other_abi = event;
        other_abi.header.abi = ABI_VERSION + 1;
        assert_eq!(
            decode(&bytes_of(&other_abi)),
            Err(DecodeError::Abi(ABI_VERSION + 1))
        );
    }
}
