//! The compact form of observations inside a format-3 or format-4 OBSERVATIONS record
//! (docs/recording-format.md, "Compact observations").
//!
//! Most of a hop repeats an earlier one: the same packet crossing the next interface
//! differs only in its time, interface, hook and perhaps TTL; the next packet of a flow
//! differs in its IP ID and sequence numbers by small steps. So each observation names a
//! *reference* — one of the 15 observations before it in the same record, or none — and
//! carries only the fields that differ from it, small numbers as LEB128 varints and steps as
//! zigzag deltas. Times are deltas from the observation before (the first from the record's
//! `now_ns`). References never cross a record, so each record decodes alone: damage to one
//! costs only its observations, and a file cut anywhere reads up to its last whole record.
//!
//! The writer looks from the nearest candidate back and takes the first that leaves a few
//! bytes, or is the same packet at an earlier hop or the same hop of an earlier packet with
//! nothing large to write; failing that, the cheapest. Decoding checks everything a damaged or hostile record could get wrong (a
//! reference before the record's start, a copied field the reference does not have, a
//! varint too long, a byte left over) and refuses the record.

use std::net::Ipv4Addr;

use bytes::{Buf, BufMut};

use crate::journey::observation::{
    Hook, IpProto, NatManip, NatRewrite, Observation, Outer, RouteChoice, Tuple,
};

/// How many observations back a reference may point.
pub const MAX_BACK: usize = 15;
/// The reference number's bits at the bottom of each observation's header varint.
const BACK_BITS: u32 = 4;

/// Which fields an observation writes (the rest it copies from its reference), in the
/// order they follow the header, most often written first so a typical header is one or
/// two bytes.
mod field {
    /// `netns_cookie` (zigzag step), `ifindex`.
    pub const IFACE: u32 = 1 << 0;
    /// Hook (3 bits) and flags (5 bits) in one byte.
    pub const HOOK_FLAGS: u32 = 1 << 1;
    pub const TTL: u32 = 1 << 2;
    /// `skb_len` (zigzag step).
    pub const SKB_LEN: u32 = 1 << 3;
    pub const CPU: u32 = 1 << 4;
    /// IP ID (zigzag step).
    pub const IP_ID: u32 = 1 << 5;
    /// TCP sequence (zigzag step from the reference's, or from its acknowledgement when the
    /// addresses are swapped: a reply's sequence is its request's acknowledgement).
    pub const TCP_SEQ: u32 = 1 << 6;
    pub const TCP_ACK: u32 = 1 << 7;
    /// IP total length (zigzag step).
    pub const IP_LEN: u32 = 1 << 8;
    pub const TCP_FLAGS: u32 = 1 << 9;
    /// ICMP type, code, echo id, echo sequence (zigzag step).
    pub const ICMP: u32 = 1 << 10;
    /// The UDP payload hash, 4 bytes (format 4; format 3 had no such bit, and every bit
    /// from here up was one lower: [`from_format_3`]).
    pub const PAYLOAD: u32 = 1 << 11;
    /// The reference's addresses and ports, swapped (a reply); no bytes.
    pub const SWAPPED: u32 = 1 << 12;
    pub const SRC: u32 = 1 << 13;
    pub const DST: u32 = 1 << 14;
    pub const PORTS: u32 = 1 << 15;
    pub const PROTO: u32 = 1 << 16;
    pub const DROP_REASON: u32 = 1 << 17;
    pub const MARK: u32 = 1 << 18;
    /// The outer header, whole (when the flags say there is one and it differs).
    pub const OUTER: u32 = 1 << 19;
    /// A route lookup's choice, whole (hook 3).
    pub const ROUTE: u32 = 1 << 20;
    /// A NAT rewrite, whole (hook 4).
    pub const NAT: u32 = 1 << 21;
    pub const ALL: u32 = (1 << 22) - 1;
    /// Format 3's fields: one bit fewer.
    pub const ALL_OF_FORMAT_3: u32 = ALL >> 1;

    /// A format-3 observation's field bits as this format numbers them.
    pub const fn from_format_3(bits: u32) -> u32 {
        let below = bits & (PAYLOAD - 1);
        below | ((bits & !(PAYLOAD - 1)) << 1)
    }
}

const HAS_OUTER: u8 = 1;
const DONT_FRAGMENT: u8 = 2;
const LATER_FRAGMENT: u8 = 4;
const SHARED_DATA: u8 = 8;
const REASON_UNKNOWN: u8 = 16;

/// Encodes `batch` after its record's `now_ns` (which the caller writes).
pub fn encode_batch(batch: &[Observation], now_ns: u64, out: &mut impl BufMut) {
    let batch: Vec<Observation> = batch.iter().map(normalized).collect();
    let mut previous_ts = now_ns;
    for (i, obs) in batch.iter().enumerate() {
        let (back, reference) = best_reference(&batch[i.saturating_sub(MAX_BACK)..i], obs);
        let fields = differences(obs, &reference);
        put_varint(out, (u64::from(fields) << BACK_BITS) | back as u64);
        put_varint(
            out,
            zigzag(obs.ts_ns.wrapping_sub(previous_ts).cast_signed()),
        );
        previous_ts = obs.ts_ns;
        put_fields(out, fields, obs, &reference);
    }
}

/// Decodes a record's observations as this format writes them; `None` if they are
/// malformed.
#[cfg(test)]
pub fn decode_batch(data: &[u8], now_ns: u64) -> Option<Vec<Observation>> {
    decode_batch_of_format(data, now_ns, super::format::FORMAT_VERSION)
}

/// Decodes a record's observations written in recording format `version` (3 or later).
pub fn decode_batch_of_format(
    mut data: &[u8],
    now_ns: u64,
    version: u32,
) -> Option<Vec<Observation>> {
    let mut out: Vec<Observation> = Vec::with_capacity(data.len() / 8);
    let mut previous_ts = now_ns;
    while data.has_remaining() {
        let header = get_varint(&mut data)?;
        let back = usize::try_from(header & ((1 << BACK_BITS) - 1)).ok()?;
        let mut fields = u32::try_from(header >> BACK_BITS).ok()?;
        if version == 3 {
            // Refused before the shift, which would lose a top bit.
            if fields & !field::ALL_OF_FORMAT_3 != 0 {
                return None;
            }
            fields = field::from_format_3(fields);
        }
        if fields & !field::ALL != 0 {
            return None;
        }
        let reference = match back {
            0 => zero(),
            // Decoded observations are already as written (normalized).
            _ => *out.get(out.len().checked_sub(back)?)?,
        };
        let ts_ns = previous_ts.wrapping_add(unzigzag(get_varint(&mut data)?).cast_unsigned());
        previous_ts = ts_ns;
        let mut obs = get_fields(&mut data, fields, &reference)?;
        obs.ts_ns = ts_ns;
        out.push(obs);
    }
    Some(out)
}

/// An observation as it is written: the route and rewrite only where the hook has them,
/// defaulted when missing (as format 2 writes them).
fn normalized(obs: &Observation) -> Observation {
    let mut obs = *obs;
    obs.route = (obs.hook == Hook::Route).then(|| {
        obs.route.unwrap_or(RouteChoice {
            table: 0,
            gateway: None,
            oif: 0,
            err: 0,
        })
    });
    obs.nat = (obs.hook == Hook::Nat).then(|| {
        obs.nat.unwrap_or(NatRewrite {
            manip: NatManip::Destination,
            reply_direction: false,
            original: obs.tuple,
            reply: obs.tuple.reversed(),
        })
    });
    obs
}

/// The reference of an observation that has none: every field zero.
fn zero() -> Observation {
    Observation {
        ts_ns: 0,
        cpu: 0,
        hook: Hook::Ingress,
        netns_cookie: 0,
        ifindex: 0,
        tuple: Tuple {
            proto: IpProto::from_number(0),
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            sport: 0,
            dport: 0,
        },
        ip_id: 0,
        ip_len: 0,
        ttl: 0,
        dont_fragment: false,
        later_fragment: false,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        icmp_seq: 0,
        payload_hash: 0,
        outer: None,
        drop_reason: 0,
        reason_unknown: false,
        shared_data: false,
        skb_len: 0,
        mark: 0,
        route: None,
        nat: None,
    }
}

/// A reference this good is taken without looking further: the next hop of the same
/// packet (a new interface and hook, perhaps a TTL) costs about this much.
const GOOD_ENOUGH: u32 = 6;
/// Fields that tell one packet from the next of its flow.
const PACKET: u32 = field::IP_ID
    | field::TCP_SEQ
    | field::TCP_ACK
    | field::IP_LEN
    | field::TCP_FLAGS
    | field::ICMP
    | field::PAYLOAD
    | field::SWAPPED;
/// Fields written whole, many bytes each.
const LARGE: u32 = field::OUTER | field::ROUTE | field::NAT;
/// Where a packet is: a candidate at the same place is the same hop of an earlier packet.
const PLACE: u32 = field::IFACE | field::HOOK_FLAGS;

/// Among the candidates (normalized, oldest first), the one that leaves the fewest bytes,
/// the nearest on a tie; the nearest good enough or settled (below) at once;
/// `(0, zero())` when none beats writing every field.
fn best_reference(candidates: &[Observation], obs: &Observation) -> (usize, Observation) {
    let mut best = (0, None);
    let mut best_cost = u32::MAX;
    let extra = obs.route.is_some() || obs.nat.is_some();
    for (back, candidate) in candidates.iter().rev().enumerate().map(|(i, c)| (i + 1, c)) {
        // A route lookup or a rewrite saves most from one of its own kind; of the others
        // only the nearest (most likely the same packet) is worth a look.
        if extra && back > 1 && candidate.hook != obs.hook {
            continue;
        }
        let fields = differences(obs, candidate);
        let this = cost(fields);
        if this < best_cost {
            best = (back, Some(candidate));
            best_cost = this;
        }
        // Nothing large to write, and the same packet at an earlier hop or the same hop
        // of an earlier packet: the reference to take.
        let settled = fields & LARGE == 0 && (fields & PACKET == 0 || fields & PLACE == 0);
        if this <= GOOD_ENOUGH || settled {
            break;
        }
    }
    let zero = zero();
    match best {
        (back, Some(candidate))
            if best_cost <= GOOD_ENOUGH || best_cost <= cost(differences(obs, &zero)) =>
        {
            (back, *candidate)
        }
        _ => (0, zero),
    }
}

/// About how many bytes the fields take (an estimate good enough to choose a reference).
fn cost(fields: u32) -> u32 {
    // Bytes per field, by bit (`field`).
    const BYTES: [u32; 22] = [
        2, 1, 1, 1, 1, 1, 2, 2, 1, 1, 4, 4, 0, 4, 4, 4, 1, 2, 2, 12, 8, 28,
    ];
    let header = (BACK_BITS + 32 - fields.leading_zeros()).div_ceil(7);
    let mut rest = fields;
    let mut bytes = header;
    while rest != 0 {
        bytes += BYTES
            .get(rest.trailing_zeros() as usize)
            .copied()
            .unwrap_or(0);
        rest &= rest - 1;
    }
    bytes
}

fn hook_flags(obs: &Observation) -> u8 {
    let hook = obs.hook.number();
    let flags = [
        (obs.outer.is_some(), HAS_OUTER),
        (obs.dont_fragment, DONT_FRAGMENT),
        (obs.later_fragment, LATER_FRAGMENT),
        (obs.shared_data, SHARED_DATA),
        (obs.reason_unknown, REASON_UNKNOWN),
    ]
    .iter()
    .fold(0, |acc, (set, bit)| acc | (u8::from(*set) * bit));
    hook | (flags << 3)
}

/// The addresses as the reference has them, or swapped when that matches more.
fn tuple_base(obs: &Observation, reference: &Observation) -> (bool, Tuple) {
    let same = reference.tuple;
    let swapped = same.reversed();
    let matching = |t: Tuple| {
        u8::from(t.src == obs.tuple.src)
            + u8::from(t.dst == obs.tuple.dst)
            + u8::from((t.sport, t.dport) == (obs.tuple.sport, obs.tuple.dport))
    };
    if matching(swapped) > matching(same) {
        (true, swapped)
    } else {
        (false, same)
    }
}

/// The bases the sequence numbers are written against.
fn tcp_bases(swapped: bool, reference: &Observation) -> (u32, u32) {
    if swapped {
        (reference.tcp_ack, reference.tcp_seq)
    } else {
        (reference.tcp_seq, reference.tcp_ack)
    }
}

fn differences(obs: &Observation, reference: &Observation) -> u32 {
    let (swapped, base) = tuple_base(obs, reference);
    let (seq_base, ack_base) = tcp_bases(swapped, reference);
    let icmp = |o: &Observation| (o.icmp_type, o.icmp_code, o.icmp_id, o.icmp_seq);
    [
        (
            (obs.netns_cookie, obs.ifindex) != (reference.netns_cookie, reference.ifindex),
            field::IFACE,
        ),
        (hook_flags(obs) != hook_flags(reference), field::HOOK_FLAGS),
        (obs.ttl != reference.ttl, field::TTL),
        (obs.skb_len != reference.skb_len, field::SKB_LEN),
        (obs.cpu != reference.cpu, field::CPU),
        (obs.ip_id != reference.ip_id, field::IP_ID),
        (obs.tcp_seq != seq_base, field::TCP_SEQ),
        (obs.tcp_ack != ack_base, field::TCP_ACK),
        (obs.ip_len != reference.ip_len, field::IP_LEN),
        (obs.tcp_flags != reference.tcp_flags, field::TCP_FLAGS),
        (icmp(obs) != icmp(reference), field::ICMP),
        (obs.payload_hash != reference.payload_hash, field::PAYLOAD),
        (swapped, field::SWAPPED),
        (obs.tuple.src != base.src, field::SRC),
        (obs.tuple.dst != base.dst, field::DST),
        (
            (obs.tuple.sport, obs.tuple.dport) != (base.sport, base.dport),
            field::PORTS,
        ),
        (obs.tuple.proto != base.proto, field::PROTO),
        (obs.drop_reason != reference.drop_reason, field::DROP_REASON),
        (obs.mark != reference.mark, field::MARK),
        (
            obs.outer.is_some() && obs.outer != reference.outer,
            field::OUTER,
        ),
        (
            obs.route.is_some() && obs.route != reference.route,
            field::ROUTE,
        ),
        (obs.nat.is_some() && obs.nat != reference.nat, field::NAT),
    ]
    .iter()
    .fold(0, |acc, (differs, bit)| acc | (u32::from(*differs) * bit))
}

fn put_fields(out: &mut impl BufMut, fields: u32, obs: &Observation, reference: &Observation) {
    let has = |bit| fields & bit != 0;
    let (swapped, _) = tuple_base(obs, reference);
    let (seq_base, ack_base) = tcp_bases(swapped, reference);
    if has(field::IFACE) {
        put_varint(
            out,
            zigzag(
                obs.netns_cookie
                    .wrapping_sub(reference.netns_cookie)
                    .cast_signed(),
            ),
        );
        put_varint(out, obs.ifindex.into());
    }
    if has(field::HOOK_FLAGS) {
        out.put_u8(hook_flags(obs));
    }
    if has(field::TTL) {
        out.put_u8(obs.ttl);
    }
    if has(field::SKB_LEN) {
        put_varint(
            out,
            zigzag(
                obs.skb_len
                    .wrapping_sub(reference.skb_len)
                    .cast_signed()
                    .into(),
            ),
        );
    }
    if has(field::CPU) {
        put_varint(out, obs.cpu.into());
    }
    if has(field::IP_ID) {
        put_varint(
            out,
            zigzag(obs.ip_id.wrapping_sub(reference.ip_id).cast_signed().into()),
        );
    }
    if has(field::TCP_SEQ) {
        put_varint(
            out,
            zigzag(obs.tcp_seq.wrapping_sub(seq_base).cast_signed().into()),
        );
    }
    if has(field::TCP_ACK) {
        put_varint(
            out,
            zigzag(obs.tcp_ack.wrapping_sub(ack_base).cast_signed().into()),
        );
    }
    if has(field::IP_LEN) {
        put_varint(
            out,
            zigzag(
                obs.ip_len
                    .wrapping_sub(reference.ip_len)
                    .cast_signed()
                    .into(),
            ),
        );
    }
    if has(field::TCP_FLAGS) {
        out.put_u8(obs.tcp_flags);
    }
    if has(field::ICMP) {
        out.put_u8(obs.icmp_type);
        out.put_u8(obs.icmp_code);
        put_varint(out, obs.icmp_id.into());
        put_varint(
            out,
            zigzag(
                obs.icmp_seq
                    .wrapping_sub(reference.icmp_seq)
                    .cast_signed()
                    .into(),
            ),
        );
    }
    if has(field::PAYLOAD) {
        out.put_u32_le(obs.payload_hash);
    }
    if has(field::SRC) {
        out.put_slice(&obs.tuple.src.octets());
    }
    if has(field::DST) {
        out.put_slice(&obs.tuple.dst.octets());
    }
    if has(field::PORTS) {
        put_varint(out, obs.tuple.sport.into());
        put_varint(out, obs.tuple.dport.into());
    }
    if has(field::PROTO) {
        out.put_u8(obs.tuple.proto.number());
    }
    if has(field::DROP_REASON) {
        put_varint(out, obs.drop_reason.into());
    }
    if has(field::MARK) {
        put_varint(out, obs.mark.into());
    }
    if let (true, Some(outer)) = (has(field::OUTER), obs.outer) {
        out.put_slice(&outer.src.octets());
        out.put_slice(&outer.dst.octets());
        put_varint(out, outer.sport.into());
        put_varint(out, outer.dport.into());
        put_varint(out, outer.vni.into());
    }
    if let (true, Some(route)) = (has(field::ROUTE), obs.route) {
        put_varint(out, route.table.into());
        out.put_slice(&route.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        put_varint(out, route.oif.into());
        put_varint(out, zigzag(route.err.into()));
    }
    if let (true, Some(nat)) = (has(field::NAT), obs.nat) {
        out.put_u8(match nat.manip {
            NatManip::Source => 0,
            NatManip::Destination => 1,
        });
        out.put_u8(u8::from(nat.reply_direction));
        for tuple in [nat.original, nat.reply] {
            out.put_u8(tuple.proto.number());
            out.put_slice(&tuple.src.octets());
            out.put_slice(&tuple.dst.octets());
            out.put_u16_le(tuple.sport);
            out.put_u16_le(tuple.dport);
        }
    }
}

/// The observation `fields` and `reference` describe (its time set by the caller).
fn get_fields(data: &mut &[u8], fields: u32, reference: &Observation) -> Option<Observation> {
    let has = |bit| fields & bit != 0;
    let mut obs = *reference;
    let swapped = has(field::SWAPPED);
    if swapped {
        obs.tuple = reference.tuple.reversed();
    }
    let (seq_base, ack_base) = tcp_bases(swapped, reference);
    obs.tcp_seq = seq_base;
    obs.tcp_ack = ack_base;
    if has(field::IFACE) {
        let step = unzigzag(get_varint(data)?).cast_unsigned();
        obs.netns_cookie = reference.netns_cookie.wrapping_add(step);
        obs.ifindex = narrow(get_varint(data)?)?;
    }
    let packed = if has(field::HOOK_FLAGS) {
        data.try_get_u8().ok()?
    } else {
        hook_flags(reference)
    };
    obs.hook = Hook::from_number(packed & 7)?;
    let flags = packed >> 3;
    obs.dont_fragment = flags & DONT_FRAGMENT != 0;
    obs.later_fragment = flags & LATER_FRAGMENT != 0;
    obs.shared_data = flags & SHARED_DATA != 0;
    obs.reason_unknown = flags & REASON_UNKNOWN != 0;
    if has(field::TTL) {
        obs.ttl = data.try_get_u8().ok()?;
    }
    if has(field::SKB_LEN) {
        obs.skb_len = reference.skb_len.wrapping_add(step32(data)?);
    }
    if has(field::CPU) {
        obs.cpu = narrow(get_varint(data)?)?;
    }
    if has(field::IP_ID) {
        obs.ip_id = reference.ip_id.wrapping_add(step16(data)?);
    }
    if has(field::TCP_SEQ) {
        obs.tcp_seq = seq_base.wrapping_add(step32(data)?);
    }
    if has(field::TCP_ACK) {
        obs.tcp_ack = ack_base.wrapping_add(step32(data)?);
    }
    if has(field::IP_LEN) {
        obs.ip_len = reference.ip_len.wrapping_add(step16(data)?);
    }
    if has(field::TCP_FLAGS) {
        obs.tcp_flags = data.try_get_u8().ok()?;
    }
    if has(field::ICMP) {
        obs.icmp_type = data.try_get_u8().ok()?;
        obs.icmp_code = data.try_get_u8().ok()?;
        obs.icmp_id = narrow(get_varint(data)?)?;
        obs.icmp_seq = reference.icmp_seq.wrapping_add(step16(data)?);
    }
    if has(field::PAYLOAD) {
        obs.payload_hash = data.try_get_u32_le().ok()?;
    }
    if has(field::SRC) {
        obs.tuple.src = get_ip(data)?;
    }
    if has(field::DST) {
        obs.tuple.dst = get_ip(data)?;
    }
    if has(field::PORTS) {
        obs.tuple.sport = narrow(get_varint(data)?)?;
        obs.tuple.dport = narrow(get_varint(data)?)?;
    }
    if has(field::PROTO) {
        obs.tuple.proto = IpProto::from_number(data.try_get_u8().ok()?);
    }
    if has(field::DROP_REASON) {
        obs.drop_reason = narrow(get_varint(data)?)?;
    }
    if has(field::MARK) {
        obs.mark = narrow(get_varint(data)?)?;
    }
    obs.outer = match (flags & HAS_OUTER != 0, has(field::OUTER)) {
        (false, false) => None,
        (true, false) => Some(reference.outer?),
        (true, true) => Some(Outer {
            src: get_ip(data)?,
            dst: get_ip(data)?,
            sport: narrow(get_varint(data)?)?,
            dport: narrow(get_varint(data)?)?,
            vni: narrow(get_varint(data)?)?,
        }),
        (false, true) => return None,
    };
    obs.route = match (obs.hook == Hook::Route, has(field::ROUTE)) {
        (false, false) => None,
        (true, false) => Some(reference.route?),
        (true, true) => Some(RouteChoice {
            table: narrow(get_varint(data)?)?,
            gateway: Some(get_ip(data)?).filter(|g| !g.is_unspecified()),
            oif: narrow(get_varint(data)?)?,
            err: i32::try_from(unzigzag(get_varint(data)?)).ok()?,
        }),
        (false, true) => return None,
    };
    obs.nat = match (obs.hook == Hook::Nat, has(field::NAT)) {
        (false, false) => None,
        (true, false) => Some(reference.nat?),
        (true, true) => Some(NatRewrite {
            manip: match data.try_get_u8().ok()? {
                0 => NatManip::Source,
                1 => NatManip::Destination,
                _ => return None,
            },
            reply_direction: match data.try_get_u8().ok()? {
                0 => false,
                1 => true,
                _ => return None,
            },
            original: get_tuple(data)?,
            reply: get_tuple(data)?,
        }),
        (false, true) => return None,
    };
    Some(obs)
}

fn get_ip(data: &mut &[u8]) -> Option<Ipv4Addr> {
    data.try_get_u32().ok().map(Ipv4Addr::from)
}

fn get_tuple(data: &mut &[u8]) -> Option<Tuple> {
    Some(Tuple {
        proto: IpProto::from_number(data.try_get_u8().ok()?),
        src: get_ip(data)?,
        dst: get_ip(data)?,
        sport: data.try_get_u16_le().ok()?,
        dport: data.try_get_u16_le().ok()?,
    })
}

fn narrow<T: TryFrom<u64>>(value: u64) -> Option<T> {
    T::try_from(value).ok()
}

/// A zigzag step of a 16-bit field, as it wraps.
fn step16(data: &mut &[u8]) -> Option<u16> {
    i16::try_from(unzigzag(get_varint(data)?))
        .ok()
        .map(i16::cast_unsigned)
}

/// A zigzag step of a 32-bit field, as it wraps.
fn step32(data: &mut &[u8]) -> Option<u32> {
    i32::try_from(unzigzag(get_varint(data)?))
        .ok()
        .map(i32::cast_unsigned)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)).cast_unsigned()
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1).cast_signed() ^ -(value & 1).cast_signed()
}

/// LEB128: seven bits a byte, low first, the top bit set on every byte but the last.
fn put_varint(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = data.try_get_u8().ok()?;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // A longer form than needed, or bits beyond 64, is not what a writer makes.
            return (shift == 0 || byte != 0).then_some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests;
