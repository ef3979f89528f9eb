//! What explaining journeys computes again and again: most packets of a flow cross the
//! same interfaces, are routed by the same entries and are named by the same Pods and
//! Services, so names, routes and whole observed hops are built once and shared
//! ([`Text`](super::model::Text) is reference-counted) instead of being formatted per
//! packet.
//!
//! The memo is owned by whoever explains a stream of journeys (a live `follow`, a replay)
//! and lives across batches. It holds names, so it must be [`Memo::renew`]ed with a stamp of
//! what it names from (the cluster model and topology in use): a new stamp empties it.
//! Each map is bounded: past [`MAX_ENTRIES`] it starts over, so a flood of distinct
//! addresses cannot grow it without limit.

use std::{cell::RefCell, hash::Hash, net::Ipv4Addr};

use super::{
    model::{Hop, HopKind, Named, RouteInfo, Text},
    observation::{Hook, IpProto, Outer, RouteChoice},
};

/// Entries per map before it is emptied and refilled.
pub const MAX_ENTRIES: usize = 16_384;

/// Where and how an observed hop was seen: everything its presentation depends on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopKey {
    pub netns_cookie: u64,
    pub ifindex: u32,
    pub hook: Hook,
    /// The VXLAN outer header that goes with this hop (its own, or for a tunnel device the
    /// one seen beside it on the uplink).
    pub outer: Option<Outer>,
}

/// A Service DNAT (or its reverse, for replies) on one node: everything its presentation
/// depends on except the client.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatKey {
    pub kind: HopKind,
    pub netns_cookie: u64,
    pub proto: IpProto,
    pub service: (Ipv4Addr, u16),
    pub endpoint: (Ipv4Addr, u16),
}

type Map<K, V> = foldhash::HashMap<K, V>;

#[derive(Default)]
struct Maps {
    nodes: Map<u64, Option<Text>>,
    names: Map<(Ipv4Addr, u16, IpProto), Named>,
    routes: Map<(u64, Ipv4Addr), RouteInfo>,
    observed_routes: Map<(u64, Ipv4Addr, RouteChoice), RouteInfo>,
    hops: Map<HopKey, Hop>,
    nat: Map<NatKey, Hop>,
}

#[derive(Default)]
pub struct Memo {
    stamp: RefCell<Option<(usize, usize)>>,
    maps: RefCell<Maps>,
}

impl Memo {
    /// Empties the memo unless it was built from the same sources: `stamp` identifies them
    /// (the serial numbers of the cluster names and topology versions in use).
    pub fn renew(&self, stamp: (usize, usize)) {
        let mut current = self.stamp.borrow_mut();
        if *current != Some(stamp) {
            self.clear();
            *current = Some(stamp);
        }
    }

    /// Forgets everything (the names it was built from changed in place).
    pub fn clear(&self) {
        *self.maps.borrow_mut() = Maps::default();
    }

    /// The remembered value, or `make`'s, remembered. `make` may use the memo itself (a
    /// hop needs names and routes): no borrow is held while it runs.
    fn remembered<K: Eq + Hash, V: Clone>(
        &self,
        map: impl Fn(&mut Maps) -> &mut Map<K, V>,
        key: K,
        make: impl FnOnce() -> V,
    ) -> V {
        if let Some(value) = map(&mut self.maps.borrow_mut()).get(&key) {
            return value.clone();
        }
        let value = make();
        let mut maps = self.maps.borrow_mut();
        let map = map(&mut maps);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, value.clone());
        value
    }

    pub fn node(&self, cookie: u64, make: impl FnOnce() -> Option<Text>) -> Option<Text> {
        self.remembered(|m| &mut m.nodes, cookie, make)
    }

    pub fn name(&self, key: (Ipv4Addr, u16, IpProto), make: impl FnOnce() -> Named) -> Named {
        self.remembered(|m| &mut m.names, key, make)
    }

    pub fn route(&self, key: (u64, Ipv4Addr), make: impl FnOnce() -> RouteInfo) -> RouteInfo {
        self.remembered(|m| &mut m.routes, key, make)
    }

    /// What a route lookup the kernel reported chose, named from the node's table (on a
    /// node, for a destination).
    pub fn observed_route(
        &self,
        key: (u64, Ipv4Addr, RouteChoice),
        make: impl FnOnce() -> RouteInfo,
    ) -> RouteInfo {
        self.remembered(|m| &mut m.observed_routes, key, make)
    }

    /// An observed hop as first explained (the caller stamps its time and packet).
    pub fn hop(&self, key: HopKey, make: impl FnOnce() -> Hop) -> Hop {
        self.remembered(|m| &mut m.hops, key, make)
    }

    /// A Service (un-)DNAT hop as first explained (the caller stamps its time and client).
    pub fn nat(&self, key: NatKey, make: impl FnOnce() -> Hop) -> Hop {
        self.remembered(|m| &mut m.nat, key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_renewed_with_another_stamp() {
        let memo = Memo::default();
        memo.renew((1, 1));
        let mut made = 0;
        for _ in 0..3 {
            memo.node(7, || {
                made += 1;
                Some("cpu1".into())
            });
        }
        assert_eq!(made, 1);
        memo.renew((1, 1));
        memo.node(7, || {
            made += 1;
            None
        });
        assert_eq!(made, 1, "same stamp keeps entries");
        memo.renew((2, 1));
        assert_eq!(memo.node(7, || None), None, "a new stamp starts over");
    }

    #[test]
    fn stays_bounded() {
        let memo = Memo::default();
        for cookie in 0..(MAX_ENTRIES as u64 * 3) {
            memo.node(cookie, || None);
        }
        assert!(memo.maps.borrow().nodes.len() <= MAX_ENTRIES);
    }
}
