//! The fixed-width form of an [`Observation`] in formats 1 and 2 (read only: format 3
//! writes the compact form, `super::compact`): little-endian fields, plus the outer VXLAN
//! header only when there is one, what a route lookup chose only for a route observation
//! (hook 3, added within format 2) and the rewrite only for a NAT observation (hook 4,
//! likewise). 72 bytes for a plain hop, 88 for an encapsulated one or a route lookup, 100
//! for a NAT rewrite. Version 2 adds flags (shared data; the drop reason unknown) in bits
//! version 1 left zero, so both versions decode the same way. The encoder stays for tests:
//! they make format-2 records to compare with.

use std::net::Ipv4Addr;

use crate::journey::observation::{
    Hook, IpProto, NatManip, NatRewrite, Observation, Outer, RouteChoice, Tuple,
};

const HAS_OUTER: u8 = 1;
const DONT_FRAGMENT: u8 = 2;
const LATER_FRAGMENT: u8 = 4;
const SHARED_DATA: u8 = 8;
const REASON_UNKNOWN: u8 = 16;

#[cfg(test)]
pub fn encode(obs: &Observation, out: &mut Vec<u8>) {
    let hook = obs.hook.number();
    let flags = if obs.outer.is_some() { HAS_OUTER } else { 0 }
        | if obs.dont_fragment { DONT_FRAGMENT } else { 0 }
        | if obs.later_fragment {
            LATER_FRAGMENT
        } else {
            0
        }
        | if obs.shared_data { SHARED_DATA } else { 0 }
        | if obs.reason_unknown {
            REASON_UNKNOWN
        } else {
            0
        };
    out.extend_from_slice(&obs.ts_ns.to_le_bytes());
    out.extend_from_slice(&obs.netns_cookie.to_le_bytes());
    out.extend_from_slice(&obs.cpu.to_le_bytes());
    out.extend_from_slice(&obs.ifindex.to_le_bytes());
    out.extend_from_slice(&[hook, flags, obs.tuple.proto.number(), obs.ttl]);
    out.extend_from_slice(&obs.tuple.src.octets());
    out.extend_from_slice(&obs.tuple.dst.octets());
    out.extend_from_slice(&obs.tuple.sport.to_le_bytes());
    out.extend_from_slice(&obs.tuple.dport.to_le_bytes());
    out.extend_from_slice(&obs.ip_id.to_le_bytes());
    out.extend_from_slice(&obs.ip_len.to_le_bytes());
    out.extend_from_slice(&obs.tcp_seq.to_le_bytes());
    out.extend_from_slice(&obs.tcp_ack.to_le_bytes());
    out.extend_from_slice(&[obs.tcp_flags, obs.icmp_type, obs.icmp_code, 0]);
    out.extend_from_slice(&obs.icmp_id.to_le_bytes());
    out.extend_from_slice(&obs.icmp_seq.to_le_bytes());
    out.extend_from_slice(&obs.drop_reason.to_le_bytes());
    out.extend_from_slice(&obs.skb_len.to_le_bytes());
    out.extend_from_slice(&obs.mark.to_le_bytes());
    if let Some(outer) = obs.outer {
        out.extend_from_slice(&outer.src.octets());
        out.extend_from_slice(&outer.dst.octets());
        out.extend_from_slice(&outer.sport.to_le_bytes());
        out.extend_from_slice(&outer.dport.to_le_bytes());
        out.extend_from_slice(&outer.vni.to_le_bytes());
    }
    if obs.hook == Hook::Route {
        let route = obs.route.unwrap_or(RouteChoice {
            table: 0,
            gateway: None,
            oif: 0,
            err: 0,
        });
        out.extend_from_slice(&route.table.to_le_bytes());
        out.extend_from_slice(&route.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        out.extend_from_slice(&route.oif.to_le_bytes());
        out.extend_from_slice(&route.err.to_le_bytes());
    }
    if obs.hook == Hook::Nat {
        let nat = obs.nat.unwrap_or(NatRewrite {
            manip: NatManip::Destination,
            reply_direction: false,
            original: obs.tuple,
            reply: obs.tuple.reversed(),
        });
        let manip = match nat.manip {
            NatManip::Source => 0u8,
            NatManip::Destination => 1,
        };
        out.extend_from_slice(&[manip, u8::from(nat.reply_direction)]);
        for tuple in [nat.original, nat.reply] {
            out.push(tuple.proto.number());
            out.extend_from_slice(&tuple.src.octets());
            out.extend_from_slice(&tuple.dst.octets());
            out.extend_from_slice(&tuple.sport.to_le_bytes());
            out.extend_from_slice(&tuple.dport.to_le_bytes());
        }
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.data.get(self.pos..self.pos + N)?;
        self.pos += N;
        bytes.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn ip(&mut self) -> Option<Ipv4Addr> {
        self.take::<4>().map(Ipv4Addr::from)
    }
    fn tuple(&mut self) -> Option<Tuple> {
        Some(Tuple {
            proto: IpProto::from_number(self.u8()?),
            src: self.ip()?,
            dst: self.ip()?,
            sport: self.u16()?,
            dport: self.u16()?,
        })
    }
}

/// Decodes every observation in a record's payload; `None` if it is malformed.
pub fn decode_all(data: &[u8]) -> Option<Vec<Observation>> {
    let mut c = Cursor { data, pos: 0 };
    let mut out = Vec::with_capacity(data.len() / 72);
    while c.pos < data.len() {
        let ts_ns = c.u64()?;
        let netns_cookie = c.u64()?;
        let cpu = c.u32()?;
        let ifindex = c.u32()?;
        let hook = Hook::from_number(c.u8()?)?;
        let flags = c.u8()?;
        let proto = c.u8()?;
        let ttl = c.u8()?;
        let tuple = Tuple {
            proto: IpProto::from_number(proto),
            src: c.ip()?,
            dst: c.ip()?,
            sport: c.u16()?,
            dport: c.u16()?,
        };
        let ip_id = c.u16()?;
        let ip_len = c.u16()?;
        let tcp_seq = c.u32()?;
        let tcp_ack = c.u32()?;
        let [tcp_flags, icmp_type, icmp_code, _] = c.take::<4>()?;
        let icmp_id = c.u16()?;
        let icmp_seq = c.u16()?;
        let drop_reason = c.u32()?;
        let skb_len = c.u32()?;
        let mark = c.u32()?;
        let outer = if flags & HAS_OUTER != 0 {
            Some(Outer {
                src: c.ip()?,
                dst: c.ip()?,
                sport: c.u16()?,
                dport: c.u16()?,
                vni: c.u32()?,
            })
        } else {
            None
        };
        let route = if hook == Hook::Route {
            let table = c.u32()?;
            let gateway = Some(c.ip()?).filter(|g| !g.is_unspecified());
            Some(RouteChoice {
                table,
                gateway,
                oif: c.u32()?,
                err: c.u32()?.cast_signed(),
            })
        } else {
            None
        };
        let nat = if hook == Hook::Nat {
            let manip = match c.u8()? {
                0 => NatManip::Source,
                1 => NatManip::Destination,
                _ => return None,
            };
            let reply_direction = match c.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            Some(NatRewrite {
                manip,
                reply_direction,
                original: c.tuple()?,
                reply: c.tuple()?,
            })
        } else {
            None
        };
        out.push(Observation {
            ts_ns,
            cpu,
            hook,
            netns_cookie,
            ifindex,
            tuple,
            ip_id,
            ip_len,
            ttl,
            dont_fragment: flags & DONT_FRAGMENT != 0,
            later_fragment: flags & LATER_FRAGMENT != 0,
            tcp_seq,
            tcp_ack,
            tcp_flags,
            icmp_type,
            icmp_code,
            icmp_id,
            icmp_seq,
            // Formats 1 and 2 predate it.
            payload_hash: 0,
            outer,
            drop_reason,
            reason_unknown: flags & REASON_UNKNOWN != 0,
            shared_data: flags & SHARED_DATA != 0,
            skb_len,
            mark,
            route,
            nat,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(outer: bool) -> Observation {
        Observation {
            ts_ns: 123_456_789,
            cpu: 1,
            hook: Hook::Egress,
            netns_cookie: 4242,
            ifindex: 3,
            tuple: Tuple {
                proto: IpProto::Tcp,
                src: Ipv4Addr::new(10, 244, 102, 137),
                dst: Ipv4Addr::new(10, 109, 60, 89),
                sport: 41234,
                dport: 80,
            },
            ip_id: 77,
            ip_len: 60,
            ttl: 64,
            dont_fragment: true,
            later_fragment: false,
            tcp_seq: 1,
            tcp_ack: 2,
            tcp_flags: 0x12,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            icmp_seq: 0,
            payload_hash: 0,
            outer: outer.then_some(Outer {
                src: Ipv4Addr::new(172, 30, 1, 80),
                dst: Ipv4Addr::new(172, 30, 1, 43),
                sport: 5555,
                dport: 4789,
                vni: 4096,
            }),
            drop_reason: 0,
            reason_unknown: outer,
            shared_data: outer,
            skb_len: 74,
            mark: 0,
            route: None,
            nat: None,
        }
    }

    #[test]
    fn round_trips_and_is_compact() {
        let mut buf = Vec::new();
        encode(&sample(false), &mut buf);
        assert_eq!(buf.len(), 72);
        encode(&sample(true), &mut buf);
        assert_eq!(buf.len(), 72 + 88);
        assert_eq!(decode_all(&buf).unwrap(), vec![sample(false), sample(true)]);
        assert!(decode_all(&buf[..100]).is_none());
    }

    #[test]
    fn a_route_lookup_round_trips() {
        let mut route = sample(false);
        route.hook = Hook::Route;
        route.route = Some(RouteChoice {
            table: 254,
            gateway: Some(Ipv4Addr::new(172, 30, 1, 43)),
            oif: 2,
            err: 0,
        });
        let mut missed = route;
        missed.route = Some(RouteChoice {
            table: 254,
            gateway: None,
            oif: 0,
            err: -11,
        });
        let mut buf = Vec::new();
        encode(&route, &mut buf);
        assert_eq!(buf.len(), 88);
        encode(&missed, &mut buf);
        assert_eq!(decode_all(&buf).unwrap(), vec![route, missed]);
    }

    #[test]
    fn a_nat_rewrite_round_trips() {
        let mut dnat = sample(false);
        dnat.hook = Hook::Nat;
        let endpoint = Tuple {
            src: Ipv4Addr::new(10, 244, 184, 84),
            ..dnat.tuple.reversed()
        };
        dnat.nat = Some(NatRewrite {
            manip: NatManip::Destination,
            reply_direction: false,
            original: dnat.tuple,
            reply: endpoint,
        });
        let mut undnat = dnat;
        undnat.nat = Some(NatRewrite {
            manip: NatManip::Source,
            reply_direction: true,
            ..dnat.nat.unwrap()
        });
        let mut buf = Vec::new();
        encode(&dnat, &mut buf);
        assert_eq!(buf.len(), 100);
        encode(&undnat, &mut buf);
        assert_eq!(decode_all(&buf).unwrap(), vec![dnat, undnat]);
        buf[72] = 9;
        assert!(decode_all(&buf).is_none(), "an unknown rewrite is damage");
    }
}
