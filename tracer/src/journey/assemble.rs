//! Groups observations into packets (see [`super::identity`]) and hands each one on when it
//! has gone quiet. Memory is bounded: past [`MAX_OPEN`] open packets the oldest is closed
//! early, and counted.

type HashMap<K, V> = foldhash::HashMap<K, V>;

use super::{
    fate,
    identity::{HOP_WINDOW_NS, Key, plausibly_same},
    observation::{Hook, Observation},
};

/// A packet is handed on once no hop has joined it for this long.
pub const CLOSE_AFTER_NS: u64 = 300_000_000;
pub const MAX_OPEN: usize = 65_536;

/// One packet's observations, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJourney {
    pub id: u64,
    pub observations: Vec<Observation>,
}

#[derive(Default)]
pub struct Assembler {
    open: HashMap<u64, RawJourney>,
    by_key: HashMap<Key, Vec<u64>>,
    next_id: u64,
    /// Journeys closed early because too many were open.
    pub evicted: u64,
}

impl Assembler {
    pub fn new() -> Self {
        Self {
            next_id: 1,
            ..Self::default()
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn push(&mut self, obs: Observation) -> Vec<RawJourney> {
        let key = Key::of(&obs);
        let joined = self.by_key.get(&key).and_then(|ids| {
            ids.iter().rev().copied().find(|id| {
                let journey = &self.open[id];
                let last = journey
                    .observations
                    .last()
                    .expect("journeys are never empty");
                // A packet passes each hook once; only a copy of it can die at a place
                // where it was already seen dying (journey::fate).
                let repeats = journey.observations.iter().any(|o| {
                    o.netns_cookie == obs.netns_cookie
                        && o.ifindex == obs.ifindex
                        && o.hook == obs.hook
                });
                // One packet may be looked up in several routing tables (policy rules), and
                // rewritten twice on one device (a DNAT, then a masquerade back out of it).
                obs.ts_ns.abs_diff(last.ts_ns) <= HOP_WINDOW_NS
                    && plausibly_same(last, &obs)
                    && (!repeats
                        || fate::may_repeat(&obs)
                        || matches!(obs.hook, Hook::Route | Hook::Nat))
            })
        });
        if let Some(id) = joined {
            let journey = self.open.get_mut(&id).expect("indexed journeys are open");
            // Events from different CPUs can arrive slightly out of order.
            let at = journey
                .observations
                .partition_point(|o| o.ts_ns <= obs.ts_ns);
            journey.observations.insert(at, obs);
            return Vec::new();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            RawJourney {
                id,
                observations: vec![obs],
            },
        );
        self.by_key.entry(key).or_default().push(id);
        if self.open.len() > MAX_OPEN {
            self.evicted += 1;
            let oldest = *self.open.keys().min().expect("not empty");
            return self.close(&[oldest]);
        }
        Vec::new()
    }

    /// Closes the packets that have been quiet since `now_ns - CLOSE_AFTER_NS` (all of them
    /// with `now_ns = u64::MAX`), oldest first.
    pub fn flush(&mut self, now_ns: u64) -> Vec<RawJourney> {
        let mut done: Vec<u64> = self
            .open
            .values()
            .filter(|j| {
                let last = j
                    .observations
                    .last()
                    .expect("journeys are never empty")
                    .ts_ns;
                now_ns.saturating_sub(last) >= CLOSE_AFTER_NS
            })
            .map(|j| j.id)
            .collect();
        done.sort_unstable();
        self.close(&done)
    }

    fn close(&mut self, ids: &[u64]) -> Vec<RawJourney> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(journey) = self.open.remove(id) else {
                continue;
            };
            let key = Key::of(&journey.observations[0]);
            if let Some(list) = self.by_key.get_mut(&key) {
                list.retain(|x| x != id);
                if list.is_empty() {
                    self.by_key.remove(&key);
                }
            }
            out.push(journey);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::journey::observation::{Hook, IpProto, Tuple};

    pub fn obs(
        ts_us: u64,
        cookie: u64,
        ifindex: u32,
        hook: Hook,
        src: [u8; 4],
        dst: [u8; 4],
        dport: u16,
    ) -> Observation {
        Observation {
            ts_ns: ts_us * 1000,
            cpu: 0,
            hook,
            netns_cookie: cookie,
            ifindex,
            tuple: Tuple {
                proto: IpProto::Tcp,
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                sport: 41234,
                dport,
            },
            ip_id: 7,
            ip_len: 60,
            ttl: 64,
            dont_fragment: true,
            later_fragment: false,
            tcp_seq: 1000,
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

    #[test]
    fn one_packet_through_dnat_is_one_journey() {
        let mut asm = Assembler::new();
        let client = [10, 244, 102, 137];
        assert!(
            asm.push(obs(0, 1, 2, Hook::Egress, client, [10, 109, 60, 89], 80))
                .is_empty()
        );
        asm.push(obs(5, 2, 3, Hook::Ingress, client, [10, 109, 60, 89], 80));
        // After DNAT: new destination, same invariant fields.
        asm.push(obs(20, 2, 2, Hook::Egress, client, [10, 244, 184, 84], 80));
        assert!(
            asm.flush(100_000).is_empty(),
            "still within the quiet period"
        );
        let done = asm.flush(20_000 + CLOSE_AFTER_NS / 1000 * 1000 + 1);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].observations.len(), 3);
        assert_eq!(asm.open_count(), 0);
    }

    #[test]
    fn the_same_key_at_the_same_hook_is_another_packet() {
        let mut asm = Assembler::new();
        asm.push(obs(0, 1, 2, Hook::Egress, [1, 1, 1, 1], [2, 2, 2, 2], 80));
        asm.push(obs(10, 1, 2, Hook::Egress, [1, 1, 1, 1], [2, 2, 2, 2], 80));
        assert_eq!(asm.open_count(), 2);
    }

    /// Two datagrams from an unconnected UDP socket with Don't Fragment set: IP ID 0, the
    /// same length, interleaved across two hooks. Only their payloads differ; the hash of
    /// it keeps each journey to one datagram.
    #[test]
    fn udp_datagrams_with_equal_headers_are_told_apart_by_their_payload() {
        let datagram = |ts_us, cookie, hook, payload: &[u8; 8]| {
            let mut o = obs(ts_us, cookie, 2, hook, [1, 1, 1, 1], [2, 2, 2, 2], 53);
            o.tuple.proto = IpProto::Udp;
            (o.ip_id, o.tcp_seq, o.tcp_flags) = (0, 0, 0);
            o.payload_hash = tracer_common::payload_hash(*payload);
            o
        };
        let (a, b) = (
            b"\x12\x34\x01\x00\x00\x01\x00\x00",
            b"\x56\x78\x01\x00\x00\x01\x00\x00",
        );
        let mut asm = Assembler::new();
        asm.push(datagram(0, 1, Hook::Egress, a));
        asm.push(datagram(1, 1, Hook::Egress, b));
        asm.push(datagram(5, 2, Hook::Ingress, a));
        asm.push(datagram(6, 2, Hook::Ingress, b));
        let done = asm.flush(u64::MAX);
        assert_eq!(done.len(), 2);
        for journey in &done {
            let hashes: Vec<u32> = journey
                .observations
                .iter()
                .map(|o| o.payload_hash)
                .collect();
            assert_eq!(hashes.len(), 2, "{hashes:x?}");
            assert_eq!(
                hashes[0], hashes[1],
                "one datagram per journey: {hashes:x?}"
            );
        }
    }

    /// A hook that could not read the payload (0: outside the linear data of the
    /// `sk_buff` a drop hook reads) still finds the datagram's journey.
    #[test]
    fn a_udp_hop_without_a_payload_hash_joins_its_datagram() {
        let mut asm = Assembler::new();
        let mut sent = obs(0, 1, 2, Hook::Egress, [1, 1, 1, 1], [2, 2, 2, 2], 53);
        sent.tuple.proto = IpProto::Udp;
        sent.payload_hash = tracer_common::payload_hash(*b"01234567");
        let mut dropped = sent;
        (dropped.ts_ns, dropped.netns_cookie, dropped.hook) = (9_000, 2, Hook::Drop);
        dropped.payload_hash = 0;
        asm.push(sent);
        asm.push(dropped);
        assert_eq!(asm.open_count(), 1);
    }

    #[test]
    fn a_late_match_outside_the_window_starts_a_new_journey_and_order_is_by_time() {
        let mut asm = Assembler::new();
        asm.push(obs(0, 1, 2, Hook::Egress, [1, 1, 1, 1], [2, 2, 2, 2], 80));
        asm.push(obs(
            HOP_WINDOW_NS / 1000 + 10,
            2,
            3,
            Hook::Ingress,
            [1, 1, 1, 1],
            [2, 2, 2, 2],
            80,
        ));
        assert_eq!(asm.open_count(), 2);

        let mut asm = Assembler::new();
        asm.push(obs(50, 2, 3, Hook::Ingress, [1, 1, 1, 1], [2, 2, 2, 2], 80));
        asm.push(obs(10, 1, 2, Hook::Egress, [1, 1, 1, 1], [2, 2, 2, 2], 80));
        let done = asm.flush(u64::MAX);
        assert_eq!(done[0].observations[0].ts_ns, 10_000);
    }
}
