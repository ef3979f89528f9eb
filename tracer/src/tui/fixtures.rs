//! Fixture journeys for the TUI tests, shaped like what `journey::explain` produces for the
//! lab's cluster (DESIGN §5): a delivered SYN through Service DNAT and direct routing, its
//! SYN,ACK with the reply un-DNAT, pings whose replies die on cpu1 for want of a route (the
//! seed's incident), a VXLAN journey, and incomplete ones with a `not_observed` hop.
//!
//! `tests/fixtures/journeys.jsonl` is generated from [`generate`] by the ignored test
//! `write_fixture` (`cargo test -p tracer --lib tui::fixtures::write_fixture -- --ignored`)
//! and committed; `fixture_matches_the_model` checks that every line still deserializes
//! into [`Journey`] and that the file says what the generator says.

use std::net::Ipv4Addr;

use crate::{
    clock::rfc3339,
    journey::model::{
        Direction, DropInfo, Encap, Endpoints, Hop, HopKind, Journey, Named, Nat, RouteInfo,
        SCHEMA_VERSION, Verdict,
    },
};

/// The committed fixture, one journey per line.
pub const JOURNEYS_JSONL: &str = include_str!("../../../tests/fixtures/journeys.jsonl");

/// CLOCK_MONOTONIC of the first journey, and the wall clock at that moment
/// (2026-05-20T09:41:12Z).
const T0_NS: u64 = 7_251_000_000_000;
const WALL0_NS: i128 = 1_779_270_072_000_000_000;

/// The fixture's journeys, parsed.
pub fn journeys() -> Vec<Journey> {
    JOURNEYS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture journey deserializes"))
        .collect()
}

/// The fixture journey with this id.
pub fn journey(id: u64) -> Journey {
    journeys()
        .into_iter()
        .find(|j| j.id == id)
        .expect("fixture has this id")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("fixture address")
}

fn ep(src: &str, sport: u16, dst: &str, dport: u16) -> Endpoints {
    Endpoints {
        src: ip(src),
        sport,
        dst: ip(dst),
        dport,
    }
}

struct Pod {
    name: &'static str,
    ip: &'static str,
    node: &'static str,
    host_veth: &'static str,
    host_ifindex: u32,
}

const NETTEST: Pod = Pod {
    name: "nettest",
    ip: "10.244.102.137",
    node: "cpu2",
    host_veth: "cali37b956d7204",
    host_ifindex: 3,
};
const NGINX_CPU1: Pod = Pod {
    name: "nginx-test-7d9c4b6f5-abcde",
    ip: "10.244.184.84",
    node: "cpu1",
    host_veth: "cali5f1e7c9a2b3",
    host_ifindex: 5,
};
const NGINX_CPU2: Pod = Pod {
    name: "nginx-test-7d9c4b6f5-q7m2x",
    ip: "10.244.102.138",
    node: "cpu2",
    host_veth: "cali8a1d2e3f4b5",
    host_ifindex: 4,
};
const NGINX_GPU1: Pod = Pod {
    name: "nginx-test-7d9c4b6f5-xk2lp",
    ip: "10.244.5.203",
    node: "gpu1",
    host_veth: "calic41f0e9d8a7",
    host_ifindex: 4,
};
const SERVICE: &str = "default/nginx-test";
const CLUSTER_IP: &str = "10.109.60.89";
const SVC_CHAIN: &str = "KUBE-SVC-W67AXLFK7VEUVN6G";

impl Pod {
    fn qualified(&self) -> String {
        format!("default/{}", self.name)
    }

    fn named(&self) -> Named {
        Named {
            ip: Some(ip(self.ip)),
            pod: Some(self.qualified().into()),
            service: None,
            node: Some(self.node.into()),
        }
    }

    fn egress(&self, t: u64, packet: Endpoints) -> Hop {
        let mut h = Hop::new(HopKind::PodEgress, t, Some(self.node.into()));
        h.interface = Some("eth0".into());
        h.ifindex = Some(2);
        h.peer = Some(format!("{}@if2 on {}", self.host_veth, self.node).into());
        h.pod = Some(self.qualified().into());
        h.packet = Some(packet);
        h.note = format!("{} sends via eth0", self.name).into();
        h
    }

    fn veth_out(&self, t: u64, packet: Endpoints) -> Hop {
        let mut h = self.veth(t, packet);
        h.note = format!(
            "eth0@if{} → {}@if2: from Pod {} into {}",
            self.host_ifindex, self.host_veth, self.name, self.node
        )
        .into();
        h
    }

    fn veth_in(&self, t: u64, packet: Endpoints) -> Hop {
        let mut h = self.veth(t, packet);
        h.note = format!(
            "{}@if2 → eth0@if{}: from {} into Pod {}",
            self.host_veth, self.host_ifindex, self.node, self.name
        )
        .into();
        h
    }

    fn veth(&self, t: u64, packet: Endpoints) -> Hop {
        let mut h = Hop::new(HopKind::VethCrossing, t, Some(self.node.into()));
        h.interface = Some(self.host_veth.into());
        h.ifindex = Some(self.host_ifindex);
        h.peer = Some(format!("eth0@if{} in {}", self.host_ifindex, self.name).into());
        h.pod = Some(self.qualified().into());
        h.packet = Some(packet);
        h
    }

    fn delivery(&self, t: u64, packet: Endpoints) -> Hop {
        let mut h = Hop::new(HopKind::PodDelivery, t, Some(self.node.into()));
        h.interface = Some("eth0".into());
        h.ifindex = Some(2);
        h.peer = Some(format!("{}@if2 on {}", self.host_veth, self.node).into());
        h.pod = Some(self.qualified().into());
        h.packet = Some(packet);
        h.note = format!("delivered into {} (eth0)", self.name).into();
        h
    }

    /// The node's route to this Pod: its veth, scope link.
    fn local_route(&self, t: u64, packet: Endpoints) -> Hop {
        route(
            t,
            self.node,
            packet,
            RouteInfo {
                prefix: Some(format!("{}/32", self.ip).into()),
                gateway: None,
                dev: Some(self.host_veth.into()),
                table: "main".into(),
                protocol: Some("boot".into()),
                kind: "unicast".into(),
                text: format!("{} dev {} scope link", self.ip, self.host_veth).into(),
                mtu: Some(1500),
            },
        )
    }
}

fn route(t: u64, node: &str, packet: Endpoints, info: RouteInfo) -> Hop {
    let mut h = Hop::new(HopKind::RouteDecision, t, Some(node.into()));
    h.observed = false;
    h.packet = Some(packet);
    h.note.clone_from(&info.text);
    h.route = Some(info);
    h
}

/// Calico's direct route to another node's Pod block.
fn direct_route(t: u64, node: &str, packet: Endpoints, block: &str, via: &str) -> Hop {
    route(
        t,
        node,
        packet,
        RouteInfo {
            prefix: Some(block.into()),
            gateway: Some(ip(via)),
            dev: Some("enp2s0".into()),
            table: "main".into(),
            protocol: Some("80".into()),
            kind: "unicast".into(),
            text: format!("{block} via {via} dev enp2s0 proto 80 onlink").into(),
            mtu: Some(1500),
        },
    )
}

fn uplink(kind: HopKind, t: u64, node: &str, packet: Endpoints) -> Hop {
    let mut h = Hop::new(kind, t, Some(node.into()));
    h.interface = Some("enp2s0".into());
    h.ifindex = Some(2);
    h.packet = Some(packet);
    h.note = if kind == HopKind::NodeEgress {
        format!("leaves {node} via enp2s0").into()
    } else {
        format!("arrives on {node} via enp2s0").into()
    };
    h
}

fn dnat(t: u64, client: Endpoints, endpoint: &Pod, chain: &str, index: usize) -> Hop {
    let after = Endpoints {
        dst: ip(endpoint.ip),
        ..client
    };
    let mut h = Hop::new(HopKind::ServiceDnat, t, Some("cpu2".into()));
    h.observed = false;
    h.service = Some(SERVICE.into());
    h.pod = Some(endpoint.qualified().into());
    h.packet = Some(after);
    h.nat = Some(Nat {
        before: client,
        after,
        service: Some(SERVICE.into()),
        endpoint_pod: Some(endpoint.qualified().into()),
        chain: Some(chain.into()),
        service_chain: Some(SVC_CHAIN.into()),
        endpoint_index: Some(index),
        endpoints_total: Some(3),
        // As recorded before proxy modes: an iptables rule, its mode not stated.
        proxy_mode: None,
        nft_chain: None,
        nft_service_chain: None,
        ipvs_virtual_server: None,
        ipvs_real_server: None,
    });
    h.note = format!(
        "{SERVICE} {CLUSTER_IP}:80 → {} {}:80, {chain}, endpoint {index} of 3",
        endpoint.name, endpoint.ip
    )
    .into();
    h
}

fn service_named() -> Named {
    Named {
        ip: Some(ip(CLUSTER_IP)),
        pod: None,
        service: Some(SERVICE.into()),
        node: None,
    }
}

struct Base {
    id: u64,
    offset_ns: u64,
    direction: Direction,
    protocol: &'static str,
    summary: &'static str,
    length: u16,
    from: Named,
    to: Named,
}

fn journey_of(base: Base, hops: Vec<Hop>, verdict: Verdict, diagnosis: &str) -> Journey {
    let original = hops
        .first()
        .and_then(|h| h.packet)
        .expect("first hop has a packet");
    let drop = hops.iter().find_map(|h| h.drop.clone());
    let duration_ns = hops
        .iter()
        .filter(|h| h.observed)
        .map(|h| h.t_ns)
        .max()
        .unwrap_or(0);
    let start_ns = T0_NS + base.offset_ns;
    Journey {
        schema: SCHEMA_VERSION,
        id: base.id,
        direction: base.direction,
        protocol: match base.protocol {
            "tcp" => crate::journey::observation::IpProto::Tcp,
            _ => crate::journey::observation::IpProto::Icmp,
        },
        summary: base.summary.into(),
        original,
        length: base.length,
        from: base.from,
        to: base.to,
        start_ns,
        started_at: rfc3339(WALL0_NS + i128::from(base.offset_ns)),
        duration_ns,
        verdict,
        diagnosis: diagnosis.into(),
        drop,
        hops,
    }
}

/// A request to the Service whose endpoint is `endpoint` on cpu1, direct routing.
fn request_to_cpu1(
    id: u64,
    offset_ns: u64,
    sport: u16,
    summary: &'static str,
    len: u16,
) -> Journey {
    let client = ep(NETTEST.ip, sport, CLUSTER_IP, 80);
    let dnatted = ep(NETTEST.ip, sport, NGINX_CPU1.ip, 80);
    let hops = vec![
        NETTEST.egress(0, client),
        NETTEST.veth_out(4_100, client),
        dnat(9_800, client, &NGINX_CPU1, "KUBE-SEP-3DGSCWRDZYIA2HSW", 2),
        direct_route(9_800, "cpu2", dnatted, "10.244.184.64/26", "172.30.1.43"),
        uplink(HopKind::NodeEgress, 12_300, "cpu2", dnatted),
        uplink(HopKind::NodeIngress, 48_900, "cpu1", dnatted),
        NGINX_CPU1.local_route(52_000, dnatted),
        NGINX_CPU1.veth_in(55_400, dnatted),
        NGINX_CPU1.delivery(61_200, dnatted),
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Request,
            protocol: "tcp",
            summary,
            length: len,
            from: NETTEST.named(),
            to: service_named(),
        },
        hops,
        Verdict::Delivered,
        "delivered to nginx-test-7d9c4b6f5-abcde via default/nginx-test → nginx-test-7d9c4b6f5-abcde, endpoint 2 of 3 in 6 observed hops, 61.2 µs",
    )
}

/// The endpoint's answer, back through cpu2 where conntrack reverses the DNAT.
fn reply_from_cpu1(
    id: u64,
    offset_ns: u64,
    sport: u16,
    summary: &'static str,
    len: u16,
) -> Journey {
    let raw = ep(NGINX_CPU1.ip, 80, NETTEST.ip, sport);
    let undone = ep(CLUSTER_IP, 80, NETTEST.ip, sport);
    let mut undnat = Hop::new(HopKind::ReplyUndnat, 47_300, Some("cpu2".into()));
    undnat.observed = false;
    undnat.service = Some(SERVICE.into());
    undnat.packet = Some(undone);
    undnat.nat = Some(Nat {
        before: raw,
        after: undone,
        service: Some(SERVICE.into()),
        endpoint_pod: None,
        chain: None,
        service_chain: None,
        endpoint_index: None,
        endpoints_total: None,
        proxy_mode: None,
        nft_chain: None,
        nft_service_chain: None,
        ipvs_virtual_server: None,
        ipvs_real_server: None,
    });
    undnat.note = format!(
        "conntrack reverses the Service DNAT: source {}:80 → {CLUSTER_IP}:80 ({SERVICE})",
        NGINX_CPU1.ip
    )
    .into();
    let hops = vec![
        NGINX_CPU1.egress(0, raw),
        NGINX_CPU1.veth_out(3_600, raw),
        direct_route(3_600, "cpu1", raw, "10.244.102.128/26", "172.30.1.80"),
        uplink(HopKind::NodeEgress, 7_900, "cpu1", raw),
        uplink(HopKind::NodeIngress, 44_100, "cpu2", raw),
        undnat,
        NETTEST.local_route(47_300, undone),
        NETTEST.veth_in(51_800, undone),
        NETTEST.delivery(58_700, undone),
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Reply,
            protocol: "tcp",
            summary,
            length: len,
            from: NGINX_CPU1.named(),
            to: NETTEST.named(),
        },
        hops,
        Verdict::Delivered,
        "delivered to nettest in 6 observed hops, 58.7 µs",
    )
}

/// nettest pings the endpoint on cpu1 directly (no Service).
fn ping_to_cpu1(id: u64, offset_ns: u64) -> Journey {
    let p = ep(NETTEST.ip, 0, NGINX_CPU1.ip, 0);
    let hops = vec![
        NETTEST.egress(0, p),
        NETTEST.veth_out(3_900, p),
        direct_route(3_900, "cpu2", p, "10.244.184.64/26", "172.30.1.43"),
        uplink(HopKind::NodeEgress, 8_200, "cpu2", p),
        uplink(HopKind::NodeIngress, 45_000, "cpu1", p),
        NGINX_CPU1.local_route(47_900, p),
        NGINX_CPU1.veth_in(50_600, p),
        NGINX_CPU1.delivery(55_100, p),
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Request,
            protocol: "icmp",
            summary: "echo-request",
            length: 84,
            from: NETTEST.named(),
            to: NGINX_CPU1.named(),
        },
        hops,
        Verdict::Delivered,
        "delivered to nginx-test-7d9c4b6f5-abcde in 6 observed hops, 55.1 µs",
    )
}

/// The echo-reply dies on cpu1: the route to cpu2's Pod block is missing (the seed's
/// wrong-interface incident).
fn ping_reply_dropped(id: u64, offset_ns: u64) -> Journey {
    let p = ep(NGINX_CPU1.ip, 0, NETTEST.ip, 0);
    let hint = "no route to 10.244.102.137 (default/nettest, on cpu2) on cpu1; the route to cpu2's Pod block 10.244.102.128/26 is missing on cpu1";
    let no_route = route(
        3_700,
        "cpu1",
        p,
        RouteInfo {
            prefix: None,
            gateway: None,
            dev: None,
            table: "main".into(),
            protocol: None,
            kind: "none".into(),
            text: format!("no route to {}", NETTEST.ip).into(),
            mtu: None,
        },
    );
    let info = DropInfo {
        reason: "IP_INNOROUTES".into(),
        reason_code: 88,
        hint: hint.into(),
        node: Some("cpu1".into()),
        interface: Some(NGINX_CPU1.host_veth.into()),
    };
    let mut drop = Hop::new(HopKind::Drop, 6_400, Some("cpu1".into()));
    drop.interface = Some(NGINX_CPU1.host_veth.into());
    drop.ifindex = Some(NGINX_CPU1.host_ifindex);
    drop.packet = Some(p);
    drop.note = format!("dropped: IP_INNOROUTES — {hint}").into();
    drop.drop = Some(info);
    let hops = vec![
        NGINX_CPU1.egress(0, p),
        NGINX_CPU1.veth_out(3_700, p),
        no_route,
        drop,
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Reply,
            protocol: "icmp",
            summary: "echo-reply",
            length: 84,
            from: NGINX_CPU1.named(),
            to: NETTEST.named(),
        },
        hops,
        Verdict::Dropped,
        &format!(
            "dropped on cpu1 at {}: {hint} (IP_INNOROUTES)",
            NGINX_CPU1.host_veth
        ),
    )
}

/// Same node: nettest pings the endpoint on cpu2, and it answers.
fn same_node_ping(id: u64, offset_ns: u64, reply: bool) -> Journey {
    let (from, to) = if reply {
        (&NGINX_CPU2, &NETTEST)
    } else {
        (&NETTEST, &NGINX_CPU2)
    };
    let p = ep(from.ip, 0, to.ip, 0);
    let hops = vec![
        from.egress(0, p),
        from.veth_out(3_200, p),
        to.local_route(3_200, p),
        to.veth_in(6_900, p),
        to.delivery(10_400, p),
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: if reply {
                Direction::Reply
            } else {
                Direction::Request
            },
            protocol: "icmp",
            summary: if reply { "echo-reply" } else { "echo-request" },
            length: 84,
            from: from.named(),
            to: to.named(),
        },
        hops,
        Verdict::Delivered,
        &format!("delivered to {} in 4 observed hops, 10.4 µs", to.name),
    )
}

fn tunnel(kind: HopKind, t: u64, node: &str, ifindex: u32, packet: Endpoints) -> Hop {
    let (src, dst) = ("172.30.1.80", "172.30.1.43");
    let mut h = Hop::new(kind, t, Some(node.into()));
    h.interface = Some("vxlan.calico".into());
    h.ifindex = Some(ifindex);
    h.packet = Some(packet);
    h.encap = Some(Encap {
        vni: 4096,
        outer_src: Some(ip(src)),
        outer_dst: Some(ip(dst)),
        udp_port: 4789,
        device: "vxlan.calico".into(),
        mtu: Some(1450),
    });
    let verb = if kind == HopKind::Encapsulation {
        "encapsulated"
    } else {
        "decapsulated"
    };
    h.note =
        format!("{verb} by vxlan.calico VNI 4096, outer {src} → {dst}, UDP 4789, MTU 1450").into();
    h
}

fn outer_uplink(kind: HopKind, t: u64, node: &str, packet: Endpoints) -> Hop {
    let mut h = uplink(kind, t, node, packet);
    h.encap = Some(Encap {
        vni: 4096,
        outer_src: Some(ip("172.30.1.80")),
        outer_dst: Some(ip("172.30.1.43")),
        udp_port: 4789,
        device: "enp2s0".into(),
        mtu: None,
    });
    h.note = format!("{} (VXLAN 172.30.1.80 → 172.30.1.43, VNI 4096)", h.note).into();
    h
}

/// The same request in the `vxlan` scenario: encapsulated on cpu2, decapsulated on cpu1.
fn vxlan_request(id: u64, offset_ns: u64, sport: u16) -> Journey {
    let client = ep(NETTEST.ip, sport, CLUSTER_IP, 80);
    let dnatted = ep(NETTEST.ip, sport, NGINX_CPU1.ip, 80);
    let hops = vec![
        NETTEST.egress(0, client),
        NETTEST.veth_out(4_300, client),
        dnat(10_200, client, &NGINX_CPU1, "KUBE-SEP-3DGSCWRDZYIA2HSW", 2),
        route(
            10_200,
            "cpu2",
            dnatted,
            RouteInfo {
                prefix: Some("10.244.184.64/26".into()),
                gateway: Some(ip("10.244.184.64")),
                dev: Some("vxlan.calico".into()),
                table: "main".into(),
                protocol: Some("80".into()),
                kind: "unicast".into(),
                text: "10.244.184.64/26 via 10.244.184.64 dev vxlan.calico proto 80 onlink".into(),
                mtu: Some(1450),
            },
        ),
        tunnel(HopKind::Encapsulation, 14_800, "cpu2", 5, dnatted),
        outer_uplink(HopKind::NodeEgress, 17_500, "cpu2", dnatted),
        outer_uplink(HopKind::NodeIngress, 56_300, "cpu1", dnatted),
        tunnel(HopKind::Decapsulation, 60_900, "cpu1", 4, dnatted),
        NGINX_CPU1.local_route(63_000, dnatted),
        NGINX_CPU1.veth_in(66_800, dnatted),
        NGINX_CPU1.delivery(73_400, dnatted),
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Request,
            protocol: "tcp",
            summary: "SYN",
            length: 60,
            from: NETTEST.named(),
            to: service_named(),
        },
        hops,
        Verdict::Delivered,
        "delivered to nginx-test-7d9c4b6f5-abcde via default/nginx-test → nginx-test-7d9c4b6f5-abcde, endpoint 2 of 3, VXLAN VNI 4096 in 8 observed hops, 73.4 µs",
    )
}

/// A request DNATed to the endpoint on gpu1 that never shows up there.
fn incomplete_to_gpu1(id: u64, offset_ns: u64, sport: u16) -> Journey {
    let client = ep(NETTEST.ip, sport, CLUSTER_IP, 80);
    let dnatted = ep(NETTEST.ip, sport, NGINX_GPU1.ip, 80);
    let mut missing = Hop::new(HopKind::NotObserved, 12_600, Some("gpu1".into()));
    missing.observed = false;
    missing.note = "expected to arrive on gpu1 (172.30.1.38); not observed there".into();
    let hops = vec![
        NETTEST.egress(0, client),
        NETTEST.veth_out(4_000, client),
        dnat(9_500, client, &NGINX_GPU1, "KUBE-SEP-7QHZKMXWN4DCO2LB", 3),
        direct_route(9_500, "cpu2", dnatted, "10.244.5.192/26", "172.30.1.38"),
        uplink(HopKind::NodeEgress, 12_600, "cpu2", dnatted),
        missing,
    ];
    journey_of(
        Base {
            id,
            offset_ns,
            direction: Direction::Request,
            protocol: "tcp",
            summary: "SYN",
            length: 60,
            from: NETTEST.named(),
            to: service_named(),
        },
        hops,
        Verdict::Incomplete,
        "incomplete: expected to arrive on gpu1 (172.30.1.38); not observed there via default/nginx-test → nginx-test-7d9c4b6f5-xk2lp, endpoint 3 of 3",
    )
}

/// The fixture: about half a minute of a session, in the order journeys complete.
pub fn generate() -> Vec<Journey> {
    const MS: u64 = 1_000_000;
    vec![
        request_to_cpu1(1, 0, 41_234, "SYN", 60),
        reply_from_cpu1(2, 120_000, 41_234, "SYN,ACK", 60),
        request_to_cpu1(3, 310_000, 41_234, "ACK", 52),
        request_to_cpu1(4, 520_000, 41_234, "PSH,ACK", 128),
        reply_from_cpu1(5, MS + 870_000, 41_234, "PSH,ACK", 664),
        same_node_ping(6, 2_500 * MS, false),
        same_node_ping(7, 2_500 * MS + 60_000, true),
        ping_to_cpu1(8, 5_000 * MS),
        ping_reply_dropped(9, 5_000 * MS + 130_000),
        ping_to_cpu1(10, 6_000 * MS),
        ping_reply_dropped(11, 6_000 * MS + 125_000),
        vxlan_request(12, 14_200 * MS, 41_502),
        incomplete_to_gpu1(13, 21_700 * MS, 41_618),
        incomplete_to_gpu1(14, 22_710 * MS, 41_618),
        request_to_cpu1(15, 31_400 * MS, 41_770, "SYN", 60),
        reply_from_cpu1(16, 31_400 * MS + 118_000, 41_770, "SYN,ACK", 60),
    ]
}

fn render_jsonl(journeys: &[Journey]) -> String {
    let mut out = String::new();
    for j in journeys {
        out.push_str(&serde_json::to_string(j).expect("journeys serialize"));
        out.push('\n');
    }
    out
}

#[test]
#[ignore = "writes tests/fixtures/journeys.jsonl; run by hand after changing the generator"]
fn write_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/journeys.jsonl"
    );
    std::fs::write(path, render_jsonl(&generate())).expect("write the fixture");
}

#[test]
fn fixture_matches_the_model() {
    let parsed = journeys();
    assert_eq!(
        parsed,
        generate(),
        "regenerate with the ignored test write_fixture"
    );
    for j in &parsed {
        assert!(!j.hops.is_empty());
        assert_eq!(j.schema, SCHEMA_VERSION);
    }
    assert!(parsed.iter().any(|j| j.verdict == Verdict::Dropped));
    assert!(parsed.iter().any(|j| j.verdict == Verdict::Incomplete));
    assert!(
        parsed
            .iter()
            .flat_map(|j| &j.hops)
            .any(|h| h.kind == HopKind::NotObserved)
    );
}
