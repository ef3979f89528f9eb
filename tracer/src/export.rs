//! `tracer export FILE --pcapng OUT`: every observed hop of a recording as one packet in a
//! pcapng file that Wireshark and tshark open without plugins.
//!
//! - One interface description block per (node, interface), named `cpu2/enp2s0` with a
//!   description saying what the interface is, nanosecond timestamps.
//! - One enhanced packet block per observed hop. tracer records parsed headers, not packet
//!   bytes, so the packet is rebuilt from them: Ethernet, IPv4 (with the recorded ID, TTL,
//!   flags and a correct header checksum), TCP/UDP/ICMP headers with the recorded ports,
//!   sequence numbers and flags, and for VXLAN the outer Ethernet/IPv4/UDP/VXLAN headers
//!   around the inner frame. The captured length is the headers; the original length is
//!   the packet's real length. L4 checksums are left zero (no payload to sum).
//! - The packet comment carries the hop's meaning: journey, verdict, node, Pod, Service,
//!   NAT, route, VXLAN, drop reason and hint, and the inferred hops that led to it.
//! - The section comment carries the recording's context and the kernel loss counters.

use std::{
    collections::BTreeMap,
    io::{self, BufWriter, Write},
    net::Ipv4Addr,
    path::Path,
};

use crate::{
    files::{self, Overwrite},
    journey::{
        assemble::RawJourney,
        model::{Hop, HopKind, Journey},
        observation::{IpProto, Observation},
    },
    output::Summary,
    replay,
};

const LINKTYPE_ETHERNET: u16 = 1;

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    // pcapng option values are limited to 65535 bytes.
    let value = &value[..value.len().min(u16::MAX as usize - 3)];
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(value);
    out.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(12 + body.len()).map_err(|_| io::Error::other("block too large"))?;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

fn section_header(out: &mut impl Write, comment: &str) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut body, 1, comment.as_bytes());
    option(
        &mut body,
        4,
        format!("tracer {}", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    option(&mut body, 0, &[]);
    block(out, 0x0a0d_0d0a, &body)
}

fn interface_block(out: &mut impl Write, name: &str, description: &str) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    option(&mut body, 2, name.as_bytes());
    option(&mut body, 3, description.as_bytes());
    option(&mut body, 9, &[9]); // if_tsresol: nanoseconds
    option(&mut body, 0, &[]);
    block(out, 1, &body)
}

fn packet_block(
    out: &mut impl Write,
    interface: u32,
    ts_ns: u64,
    data: &[u8],
    original_len: u32,
    comment: &str,
) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&interface.to_le_bytes());
    body.extend_from_slice(&u32::try_from(ts_ns >> 32).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(
        &u32::try_from(ts_ns & 0xffff_ffff)
            .unwrap_or(0)
            .to_le_bytes(),
    );
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    body.extend_from_slice(&captured.to_le_bytes());
    body.extend_from_slice(&original_len.max(captured).to_le_bytes());
    body.extend_from_slice(data);
    body.extend(std::iter::repeat_n(0u8, pad4(data.len())));
    option(&mut body, 1, comment.as_bytes());
    option(&mut body, 0, &[]);
    block(out, 6, &body)
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0)
}

fn ethernet(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
}

#[allow(clippy::too_many_arguments, reason = "one field per IPv4 header field")]
fn ipv4(
    out: &mut Vec<u8>,
    total_len: u16,
    id: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    let mut header = [0u8; 20];
    header[0] = 0x45;
    header[2..4].copy_from_slice(&total_len.to_be_bytes());
    header[4..6].copy_from_slice(&id.to_be_bytes());
    if df {
        header[6] = 0x40;
    }
    header[8] = ttl;
    header[9] = proto;
    header[12..16].copy_from_slice(&src.octets());
    header[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&header);
}

fn l4(out: &mut Vec<u8>, obs: &Observation) {
    match obs.tuple.proto {
        IpProto::Tcp => {
            out.extend_from_slice(&obs.tuple.sport.to_be_bytes());
            out.extend_from_slice(&obs.tuple.dport.to_be_bytes());
            out.extend_from_slice(&obs.tcp_seq.to_be_bytes());
            out.extend_from_slice(&obs.tcp_ack.to_be_bytes());
            out.extend_from_slice(&[0x50, obs.tcp_flags]);
            out.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        }
        IpProto::Udp => {
            let len = obs.ip_len.saturating_sub(20);
            out.extend_from_slice(&obs.tuple.sport.to_be_bytes());
            out.extend_from_slice(&obs.tuple.dport.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        IpProto::Icmp => {
            out.extend_from_slice(&[obs.icmp_type, obs.icmp_code, 0, 0]);
            out.extend_from_slice(&obs.icmp_id.to_be_bytes());
            out.extend_from_slice(&obs.icmp_seq.to_be_bytes());
        }
        _ => {}
    }
}

/// The packet's headers rebuilt from an observation, and its real length on the wire.
pub fn synthesize(obs: &Observation) -> (Vec<u8>, u32) {
    let mut inner = Vec::with_capacity(96);
    ethernet(&mut inner);
    ipv4(
        &mut inner,
        obs.ip_len,
        obs.ip_id,
        obs.dont_fragment,
        obs.ttl,
        obs.tuple.proto.number(),
        obs.tuple.src,
        obs.tuple.dst,
    );
    l4(&mut inner, obs);
    let inner_len = 14 + u32::from(obs.ip_len);
    let Some(outer) = obs.outer else {
        return (inner, inner_len);
    };
    let mut packet = Vec::with_capacity(inner.len() + 50);
    ethernet(&mut packet);
    let outer_ip_len = u16::try_from(20 + 8 + 8 + inner_len).unwrap_or(u16::MAX);
    ipv4(
        &mut packet,
        outer_ip_len,
        0,
        false,
        64,
        17,
        outer.src,
        outer.dst,
    );
    packet.extend_from_slice(&outer.sport.to_be_bytes());
    packet.extend_from_slice(&outer.dport.to_be_bytes());
    packet.extend_from_slice(&(outer_ip_len - 20).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&[0x08, 0, 0, 0]);
    packet.extend_from_slice(&(outer.vni << 8).to_be_bytes());
    packet.extend_from_slice(&inner);
    (packet, 14 + u32::from(outer_ip_len))
}

/// The packet comment for an observed hop, with the inferred hops just before it.
fn comment(journey: &Journey, index: usize) -> String {
    let hop = &journey.hops[index];
    let mut lines = vec![format!(
        "journey #{} {} {} [{}] {}: {}",
        journey.id,
        journey.protocol,
        journey.summary,
        format!("{:?}", journey.direction).to_lowercase(),
        journey.verdict.as_str(),
        journey.diagnosis
    )];
    let inferred = journey.hops[..index]
        .iter()
        .rev()
        .take_while(|h| !h.observed);
    let mut earlier: Vec<&Hop> = inferred.collect();
    earlier.reverse();
    for h in earlier {
        lines.push(format!(
            "  before: {} on {}: {}",
            h.kind.label(),
            h.node.as_deref().unwrap_or("?"),
            h.note
        ));
    }
    let mut names = Vec::new();
    if let Some(pod) = &hop.pod {
        names.push(format!("pod {pod}"));
    }
    if let Some(service) = &hop.service {
        names.push(format!("service {service}"));
    }
    lines.push(format!(
        "hop {}: {} on {}{}: {}",
        index + 1,
        hop.kind.label(),
        hop.node.as_deref().unwrap_or("?"),
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        },
        hop.note
    ));
    if hop.kind == HopKind::Drop
        && let Some(drop) = &hop.drop
    {
        lines.push(format!(
            "drop reason {} ({}): {}",
            drop.reason, drop.reason_code, drop.hint
        ));
    }
    lines.join("\n")
}

/// Writes the export to `out_path` (created by the rules of [`crate::files`]: `-` is stdout,
/// an existing file only with `--force`, never the recording itself); returns how many
/// packets and the replay summary. A failed export leaves no file behind.
pub fn export(
    recording: &Path,
    out_path: &Path,
    overwrite: Overwrite,
) -> anyhow::Result<(u64, Summary)> {
    let rules = files::Rules {
        what: "pcapng export",
        overwrite,
        streams: files::Streams::Allowed,
        input: Some(recording),
    };
    // Before reading the recording: a refused target is refused at once.
    let mut output = files::create(out_path, &rules)?;
    // Interfaces are only known once journeys are read, and pcapng wants each interface
    // block before its first packet: collect packets, then write in one pass.
    let mut interfaces: BTreeMap<(String, String), (u32, String)> = BTreeMap::new();
    let mut packets: Vec<(u32, u64, Vec<u8>, u32, String)> = Vec::new();
    let mut each = replay::Each(|raw: &RawJourney, journey: &Journey| {
        for (index, hop) in journey.hops.iter().enumerate() {
            let Some(obs) = hop.observation.and_then(|i| raw.observations.get(i)) else {
                continue;
            };
            let node = hop.node.as_deref().unwrap_or("host").to_owned();
            // A routing decision is not on an interface: its packets go in one of their own.
            let interface = if hop.kind == HopKind::RouteDecision {
                "fib_table_lookup".to_owned()
            } else {
                hop.interface
                    .as_deref()
                    .map_or_else(|| format!("if{}", obs.ifindex), str::to_owned)
            };
            let next_id = u32::try_from(interfaces.len()).unwrap_or(u32::MAX);
            let description = match hop.kind {
                HopKind::Drop => format!("kernel drops on {node}"),
                HopKind::RouteDecision => format!("routing decisions on {node}"),
                _ => format!(
                    "{interface} on {node}{}",
                    hop.pod
                        .as_deref()
                        .map(|p| format!(" (Pod {p})"))
                        .unwrap_or_default()
                ),
            };
            let (id, _) = interfaces
                .entry((node.clone(), interface.clone()))
                .or_insert((next_id, description))
                .clone();
            let (data, original) = synthesize(obs);
            packets.push((id, obs.ts_ns, data, original, comment(journey, index)));
        }
        true
    });
    let replay::Replayed { summary, meta } = replay::replay(recording, &mut each)?;
    let wall_offset = meta.as_ref().map_or(0, |m| m.session.wall_offset_ns);
    let mut out = BufWriter::new(output.file());
    let section = format!(
        "tracer recording {}\nfollowing {}\nnames from {}\nevents lost in the kernel while recording: {} (ring buffer full), {} (unparsable)",
        recording.display(),
        meta.as_ref().map_or("?", |m| m.session.following.as_str()),
        meta.as_ref().map_or("?", |m| m.session.names_from.as_str()),
        summary.counters.source.ringbuf_full,
        summary.counters.source.parse_failed,
    );
    let written = (|| -> io::Result<()> {
        section_header(&mut out, &section)?;
        let mut by_id: Vec<_> = interfaces.iter().collect();
        by_id.sort_by_key(|(_, (id, _))| *id);
        for ((node, interface), (_, description)) in by_id {
            interface_block(&mut out, &format!("{node}/{interface}"), description)?;
        }
        packets.sort_by_key(|p| p.1);
        for (id, ts, data, original, comment) in &packets {
            let wall = u64::try_from(i128::from(*ts) + i128::from(wall_offset)).unwrap_or(*ts);
            packet_block(&mut out, *id, wall, data, *original, comment)?;
        }
        out.flush()
    })();
    drop(out);
    written.map_err(|e| files::FileError::io("write", out_path, e))?;
    output.persist()?;
    Ok((packets.len() as u64, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_checksum_is_right() {
        let mut out = Vec::new();
        ipv4(
            &mut out,
            60,
            1,
            true,
            64,
            6,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&out), 0);
    }
}
