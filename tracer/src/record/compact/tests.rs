//! The compact codec: a realistic packet path and its reply, every observation kind,
//! thousands of varied observations, damage of every kind, and every observation of the
//! committed lab recordings (format 2) written compactly and read back.

use std::net::Ipv4Addr;

use super::*;
use crate::record::{
    codec,
    format::{RECORD_HEAD_LEN, Record},
    reader::{Reader, Step},
};

const NOW: u64 = 5_000_000_000;

fn request(ts_ns: u64) -> Observation {
    Observation {
        ts_ns,
        cpu: 1,
        hook: Hook::Egress,
        netns_cookie: 4101,
        ifindex: 2,
        tuple: Tuple {
            proto: IpProto::Tcp,
            src: Ipv4Addr::new(10, 244, 102, 137),
            dst: Ipv4Addr::new(10, 109, 60, 89),
            sport: 41234,
            dport: 80,
        },
        ip_id: 4711,
        ip_len: 60,
        ttl: 64,
        dont_fragment: true,
        later_fragment: false,
        tcp_seq: 3_000_000_000,
        tcp_ack: 0,
        tcp_flags: 0x02,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        icmp_seq: 0,
        payload_hash: 0,
        outer: None,
        drop_reason: 0,
        reason_unknown: false,
        shared_data: false,
        skb_len: 74,
        mark: 0,
        route: None,
        nat: None,
    }
}

/// One request across two nodes (Pod veth, host side, NAT, route lookup, VXLAN uplink,
/// the other node's uplink and the endpoint's veth), its reply back, and a drop.
fn path() -> Vec<Observation> {
    let endpoint = Ipv4Addr::new(10, 244, 184, 84);
    let mut out = Vec::new();
    let mut hop = request(NOW - 40_000);
    out.push(hop);
    hop.ts_ns += 3_100;
    hop.hook = Hook::Ingress;
    hop.netns_cookie = 1;
    hop.ifindex = 9;
    out.push(hop);
    let mut nat = hop;
    nat.ts_ns += 1_900;
    nat.hook = Hook::Nat;
    nat.nat = Some(NatRewrite {
        manip: NatManip::Destination,
        reply_direction: false,
        original: hop.tuple,
        reply: Tuple {
            src: endpoint,
            ..hop.tuple.reversed()
        },
    });
    out.push(nat);
    hop.tuple.dst = endpoint;
    let mut route = hop;
    route.ts_ns = nat.ts_ns + 2_500;
    route.hook = Hook::Route;
    route.route = Some(RouteChoice {
        table: 254,
        gateway: Some(Ipv4Addr::new(172, 30, 1, 43)),
        oif: 3,
        err: 0,
    });
    out.push(route);
    hop.ts_ns = route.ts_ns + 4_000;
    hop.hook = Hook::Egress;
    hop.ifindex = 3;
    hop.ttl = 63;
    hop.skb_len += 50;
    hop.outer = Some(Outer {
        src: Ipv4Addr::new(172, 30, 1, 80),
        dst: Ipv4Addr::new(172, 30, 1, 43),
        sport: 53_211,
        dport: 4789,
        vni: 4096,
    });
    out.push(hop);
    hop.ts_ns += 61_000;
    hop.hook = Hook::Ingress;
    hop.netns_cookie = 2;
    hop.cpu = 0;
    out.push(hop);
    hop.ts_ns += 5_000;
    hop.hook = Hook::Egress;
    hop.ifindex = 11;
    hop.ttl = 62;
    hop.skb_len -= 50;
    hop.outer = None;
    out.push(hop);
    // The reply, back the same way.
    let mut reply = hop;
    reply.ts_ns += 30_000;
    reply.tuple = hop.tuple.reversed();
    reply.tcp_seq = 1_234_567;
    reply.tcp_ack = hop.tcp_seq + 1;
    reply.tcp_flags = 0x12;
    reply.ip_id = 0;
    reply.ttl = 64;
    reply.hook = Hook::Ingress;
    out.push(reply);
    // A drop of the next packet, its reason unknown.
    let mut drop = request(reply.ts_ns + 1_000);
    drop.ip_id += 1;
    drop.tcp_seq += 1;
    drop.hook = Hook::Drop;
    drop.drop_reason = 77;
    drop.reason_unknown = true;
    drop.shared_data = true;
    out.push(drop);
    out
}

fn encoded(batch: &[Observation]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(batch, NOW, &mut out);
    out
}

#[test]
fn a_path_and_its_reply_round_trip_in_a_fraction_of_the_fixed_size() {
    let batch = path();
    let bytes = encoded(&batch);
    assert_eq!(decode_batch(&bytes, NOW).unwrap(), batch);
    let mut fixed = Vec::new();
    for obs in &batch {
        codec::encode(obs, &mut fixed);
    }
    assert!(
        bytes.len() * 4 < fixed.len(),
        "{} bytes compact, {} fixed",
        bytes.len(),
        fixed.len()
    );
}

#[test]
fn the_next_packets_of_a_flow_take_a_few_bytes_each() {
    let mut batch = path();
    let first = batch.len();
    for round in 1..=20u32 {
        for (i, obs) in path().into_iter().enumerate() {
            let mut obs = obs;
            obs.ts_ns += u64::from(round) * 100_000;
            obs.ip_id = obs.ip_id.wrapping_add(round as u16);
            if i < 7 || i == 8 {
                obs.tcp_seq = obs.tcp_seq.wrapping_add(round * 1448);
            } else {
                obs.tcp_ack = obs.tcp_ack.wrapping_add(round * 1448);
            }
            batch.push(obs);
        }
    }
    let bytes = encoded(&batch);
    assert_eq!(decode_batch(&bytes, NOW).unwrap(), batch);
    let later = bytes.len() - encoded(&batch[..first]).len();
    let per_hop = later as f64 / (batch.len() - first) as f64;
    assert!(per_hop <= 12.0, "{per_hop:.1} bytes per hop");
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Changes a few random fields, to any value (wrapping steps, extremes, zeros).
fn mutate(obs: &mut Observation, rng: &mut Rng) {
    for _ in 0..=rng.below(3) {
        let v = rng.next();
        match rng.below(25) {
            0 => obs.ts_ns = v,
            1 => obs.cpu = v as u32,
            2 => {
                obs.hook = [
                    Hook::Ingress,
                    Hook::Egress,
                    Hook::Drop,
                    Hook::Route,
                    Hook::Nat,
                ][rng.below(5) as usize];
            }
            3 => obs.netns_cookie = v,
            4 => obs.ifindex = v as u32,
            5 => obs.tuple = obs.tuple.reversed(),
            6 => obs.tuple.src = Ipv4Addr::from(v as u32),
            7 => obs.tuple.dst = Ipv4Addr::from(v as u32),
            8 => (obs.tuple.sport, obs.tuple.dport) = (v as u16, (v >> 16) as u16),
            9 => obs.tuple.proto = IpProto::from_number(v as u8),
            10 => obs.ip_id = v as u16,
            11 => obs.ip_len = v as u16,
            12 => obs.ttl = v as u8,
            13 => (obs.dont_fragment, obs.later_fragment) = (v & 1 != 0, v & 2 != 0),
            14 => (obs.tcp_seq, obs.tcp_ack) = (v as u32, (v >> 32) as u32),
            15 => obs.tcp_flags = v as u8,
            16 => {
                (obs.icmp_type, obs.icmp_code, obs.icmp_id, obs.icmp_seq) =
                    (v as u8, (v >> 8) as u8, (v >> 16) as u16, (v >> 32) as u16);
            }
            17 => {
                obs.outer = (v & 1 != 0).then(|| Outer {
                    src: Ipv4Addr::from((v >> 8) as u32),
                    dst: Ipv4Addr::from((v >> 16) as u32),
                    sport: (v >> 24) as u16,
                    dport: 4789,
                    vni: (v >> 40) as u32,
                });
            }
            18 => obs.drop_reason = v as u32,
            19 => (obs.reason_unknown, obs.shared_data) = (v & 1 != 0, v & 2 != 0),
            20 => obs.skb_len = v as u32,
            21 => obs.mark = v as u32,
            23 => obs.payload_hash = v as u32,
            22 => {
                obs.route = Some(RouteChoice {
                    table: v as u32,
                    gateway: Some(Ipv4Addr::from((v >> 32) as u32)).filter(|g| !g.is_unspecified()),
                    oif: (v >> 8) as u32,
                    err: -((v >> 56) as i32),
                });
            }
            _ => {
                obs.nat = Some(NatRewrite {
                    manip: if v & 1 == 0 {
                        NatManip::Source
                    } else {
                        NatManip::Destination
                    },
                    reply_direction: v & 2 != 0,
                    original: obs.tuple,
                    reply: Tuple {
                        src: Ipv4Addr::from((v >> 16) as u32),
                        ..obs.tuple.reversed()
                    },
                });
            }
        }
    }
}

#[test]
fn thousands_of_varied_observations_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = path();
    for _ in 0..400 {
        let mut batch = Vec::new();
        let mut obs = seeds[rng.below(seeds.len() as u64) as usize];
        for _ in 0..rng.below(40) {
            // Sometimes start from an earlier one, as packets of a flow interleave.
            if !batch.is_empty() && rng.below(4) == 0 {
                obs = batch[rng.below(batch.len() as u64) as usize];
            }
            mutate(&mut obs, &mut rng);
            batch.push(normalized(&obs));
        }
        let now = rng.next();
        let mut bytes = Vec::new();
        encode_batch(&batch, now, &mut bytes);
        assert_eq!(decode_batch(&bytes, now), Some(batch));
    }
}

#[test]
fn damage_is_refused_never_misread_as_observations() {
    let batch = path();
    let bytes = encoded(&batch);
    // Cut anywhere: refused, or (at an observation's end) the observations before the cut.
    for cut in 0..bytes.len() {
        if let Some(decoded) = decode_batch(&bytes[..cut], NOW) {
            assert_eq!(decoded, batch[..decoded.len()], "cut at {cut}");
        }
    }
    // A reference before the record's first observation.
    let mut early = Vec::new();
    put_varint(&mut early, 1);
    put_varint(&mut early, 0);
    assert_eq!(decode_batch(&early, NOW), None);
    // Copying an outer header, a route or a rewrite from a reference that has none.
    for packed in [HAS_OUTER << 3, 3, 4] {
        let mut copy = encoded(&path()[..1]);
        put_varint(&mut copy, (u64::from(field::HOOK_FLAGS) << BACK_BITS) | 1);
        put_varint(&mut copy, 0);
        copy.put_u8(packed);
        assert_eq!(decode_batch(&copy, NOW), None, "flags {packed}");
    }
    // An unknown hook, an unknown field, a varint too long.
    let mut hook = Vec::new();
    put_varint(&mut hook, u64::from(field::HOOK_FLAGS) << BACK_BITS);
    put_varint(&mut hook, 0);
    hook.put_u8(7);
    assert_eq!(decode_batch(&hook, NOW), None);
    let mut unknown = Vec::new();
    put_varint(&mut unknown, u64::from(field::ALL + 1) << BACK_BITS);
    put_varint(&mut unknown, 0);
    assert_eq!(decode_batch(&unknown, NOW), None);
    assert_eq!(decode_batch(&[0xff; 11], NOW), None);
    assert_eq!(
        decode_batch(&[0x80, 0x00, 0x00], NOW),
        None,
        "overlong zero"
    );
}

/// Format 3 numbered the fields without the payload hash: its bits from "swapped" up are
/// this format's, one higher; its bits below are the same. (A whole format-3 file:
/// `record::tests::a_version_3_recording_replays_as_the_tracer_that_wrote_it_printed_it`.)
#[test]
fn format_3_field_bits_map_onto_this_format() {
    assert_eq!(field::from_format_3(field::PAYLOAD - 1), field::PAYLOAD - 1);
    assert_eq!(field::from_format_3(1 << 11), field::SWAPPED);
    assert_eq!(field::from_format_3(1 << 20), field::NAT);
    assert_eq!(
        field::from_format_3((1 << 21) - 1),
        field::ALL & !field::PAYLOAD
    );
    // Bits format 3 did not have are refused, the top one too (a shift would lose it).
    for bit in [21, 31] {
        let header = u64::from(1u32 << bit) << BACK_BITS;
        let mut bytes = Vec::new();
        put_varint(&mut bytes, header);
        put_varint(&mut bytes, 0);
        assert_eq!(decode_batch_of_format(&bytes, 0, 3), None, "bit {bit}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(12345);
    let valid = encoded(&path());
    for _ in 0..20_000 {
        let mut bytes = valid.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
        let _ = decode_batch(&bytes, NOW);
    }
}

#[test]
fn varints_and_zigzag_round_trip_at_the_extremes() {
    for value in [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, value);
        let mut data = bytes.as_slice();
        assert_eq!(get_varint(&mut data), Some(value));
        assert!(data.is_empty());
    }
    for value in [0, 1, -1, i64::MAX, i64::MIN] {
        assert_eq!(unzigzag(zigzag(value)), value);
    }
}

/// Every observation record of the lab recordings (`tests/data/recordings`, format 2),
/// written compactly batch by batch and read back: the same observations, in a third of
/// the bytes or less, and at most 24 bytes per hop with each record's framing. Prints the
/// sizes.
#[test]
fn every_committed_lab_recording_round_trips_compactly() {
    let files = crate::record::tests::committed_recordings();
    let (mut hops, mut fixed, mut compact, mut records) = (0usize, 0usize, 0usize, 0usize);
    for file in files {
        let mut reader = Reader::open(&file).unwrap();
        loop {
            match reader.next_step() {
                Step::Record(Record::Observations {
                    now_ns: Some(now),
                    batch,
                }) => {
                    let mut bytes = Vec::new();
                    encode_batch(&batch, now, &mut bytes);
                    assert_eq!(
                        decode_batch(&bytes, now).as_ref(),
                        Some(&batch),
                        "{}",
                        file.display()
                    );
                    hops += batch.len();
                    compact += bytes.len();
                    records += 1;
                    for obs in &batch {
                        let mut one = Vec::new();
                        codec::encode(obs, &mut one);
                        fixed += one.len();
                    }
                }
                Step::End { .. } => break,
                _ => {}
            }
        }
    }
    // Each record adds its sync mark, length, kind, CRC and `now_ns`.
    let framed = compact + records * (RECORD_HEAD_LEN + 4 + 8);
    let per_hop = framed as f64 / hops as f64;
    println!(
        "{hops} hops in {records} records: {fixed} bytes fixed, {compact} compact, \
         {per_hop:.1} per hop framed ({:.1} fixed)",
        fixed as f64 / hops as f64
    );
    assert!(hops > 500, "{hops} hops");
    assert!(compact * 3 <= fixed, "{compact} compact, {fixed} fixed");
    assert!(per_hop <= 24.0, "{per_hop:.1} bytes per hop");
}
