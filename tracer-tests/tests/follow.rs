//! `tracer follow` end to end: real traffic in the lab, real kernel hooks, and assertions on
//! the JSON journeys it prints (issue #4's acceptance list). Needs root; serial.

use std::collections::BTreeSet;

use serde_json::Value;
use tracer_tests::{
    follow::{Follow, has_hop, hops},
    lab::Lab,
    require_root,
};

fn requests<'a>(journeys: &'a [Value], summary: &str) -> Vec<&'a Value> {
    journeys
        .iter()
        .filter(|j| j["direction"] == "request" && j["summary"] == summary)
        .collect()
}

fn replies<'a>(journeys: &'a [Value], summary: &str) -> Vec<&'a Value> {
    journeys
        .iter()
        .filter(|j| j["direction"] == "reply" && j["summary"] == summary)
        .collect()
}

#[test]
fn healthy_service_requests_show_veth_dnat_route_delivery_and_undnat() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    for _ in 0..30 {
        let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{page}");
    }
    let journeys = follow.stop();

    let syns = requests(&journeys, "SYN");
    assert_eq!(syns.len(), 30, "one SYN journey per request: {journeys:#?}");
    let nettest_veth = "cali37b956d7204";
    let mut endpoints = BTreeSet::new();
    for syn in &syns {
        assert_eq!(syn["verdict"], "delivered", "{syn:#}");
        assert_eq!(syn["from"]["pod"], "default/nettest");
        assert_eq!(syn["to"]["service"], "default/nginx-test");
        let veth = hops(syn, "veth_crossing");
        assert!(
            veth.iter().any(|h| h["interface"] == nettest_veth
                && h["peer"].as_str().unwrap().starts_with("eth0@if")),
            "crosses nettest's veth: {syn:#}"
        );
        let dnat = hops(syn, "service_dnat");
        assert_eq!(dnat.len(), 1, "{syn:#}");
        let nat = &dnat[0]["nat"];
        assert_eq!(nat["service"], "default/nginx-test");
        assert!(
            nat["chain"].as_str().unwrap().starts_with("KUBE-SEP-"),
            "{nat:#}"
        );
        assert_eq!(nat["service_chain"], "KUBE-SVC-W67AXLFK7VEUVN6G");
        assert_eq!(nat["endpoints_total"], 3);
        let endpoint = nat["endpoint_pod"].as_str().unwrap().to_owned();
        assert!(has_hop(syn, "route_decision"), "{syn:#}");
        let delivered = hops(syn, "pod_delivery");
        assert_eq!(delivered.len(), 1, "{syn:#}");
        assert_eq!(delivered[0]["pod"].as_str().unwrap(), endpoint);
        endpoints.insert(endpoint);
    }
    assert_eq!(
        endpoints.len(),
        3,
        "all three endpoints were chosen: {endpoints:?}"
    );

    let syn_acks = replies(&journeys, "SYN,ACK");
    assert_eq!(syn_acks.len(), 30);
    for reply in &syn_acks {
        assert_eq!(reply["verdict"], "delivered", "{reply:#}");
        let undnat = hops(reply, "reply_undnat");
        assert_eq!(undnat.len(), 1, "{reply:#}");
        assert_eq!(undnat[0]["nat"]["after"]["src"], "10.109.60.89");
        assert_eq!(hops(reply, "pod_delivery")[0]["pod"], "default/nettest");
    }
}

#[test]
fn vxlan_journeys_show_encapsulation_and_decapsulation() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("vxlan");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    let journeys = follow.stop();
    let echo = requests(&journeys, "echo-request");
    assert!(!echo.is_empty(), "{journeys:#?}");
    for journey in echo {
        assert_eq!(journey["verdict"], "delivered", "{journey:#}");
        let encap = hops(journey, "encapsulation");
        assert_eq!(encap.len(), 1, "{journey:#}");
        let e = &encap[0]["encap"];
        assert_eq!(e["vni"], 4096);
        assert_eq!(e["outer_src"], "172.30.1.80");
        assert_eq!(e["outer_dst"], "172.30.1.43");
        assert_eq!(e["mtu"], 1450);
        assert_eq!(encap[0]["node"], "cpu2");
        let decap = hops(journey, "decapsulation");
        assert_eq!(decap.len(), 1, "{journey:#}");
        assert_eq!(decap[0]["node"], "cpu1");
    }
}

#[test]
fn cross_subnet_is_direct_to_cpu1_and_vxlan_to_gpu1_in_one_run() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("cross-subnet");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    assert!(lab.ping("pod-nettest", "10.244.5.203"));
    let journeys = follow.stop();
    let echo = requests(&journeys, "echo-request");
    let to = |ip: &str| {
        echo.iter()
            .filter(|j| j["original"]["dst"] == ip)
            .collect::<Vec<_>>()
    };
    let to_cpu1 = to("10.244.184.84");
    let to_gpu1 = to("10.244.5.203");
    assert!(!to_cpu1.is_empty() && !to_gpu1.is_empty(), "{journeys:#?}");
    for j in to_cpu1 {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert!(
            !has_hop(j, "encapsulation"),
            "direct routing to cpu1: {j:#}"
        );
        let route = &hops(j, "route_decision")[0]["route"];
        assert_eq!(route["dev"], "enp2s0");
        assert_eq!(route["gateway"], "172.30.1.43");
    }
    for j in to_gpu1 {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert_eq!(
            hops(j, "encapsulation")[0]["encap"]["outer_dst"],
            "172.30.2.38",
            "{j:#}"
        );
        assert_eq!(hops(j, "route_decision")[0]["route"]["dev"], "vxlan.calico");
    }
}

#[test]
fn wrong_interface_reply_dies_on_cpu1_for_want_of_a_route() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let journeys = follow.stop();
    let requests = requests(&journeys, "echo-request");
    assert!(!requests.is_empty(), "{journeys:#?}");
    assert!(
        requests.iter().all(|j| j["verdict"] == "delivered"),
        "requests arrive: {requests:#?}"
    );
    let replies = replies(&journeys, "echo-reply");
    assert!(!replies.is_empty(), "{journeys:#?}");
    for reply in replies {
        assert_eq!(reply["verdict"], "dropped", "{reply:#}");
        let drop = &reply["drop"];
        assert_eq!(drop["node"], "cpu1");
        assert!(!drop["reason"].as_str().unwrap().is_empty());
        let hint = drop["hint"].as_str().unwrap();
        assert!(
            hint.contains("10.244.102.128/26"),
            "hint names nettest's block: {hint}"
        );
        assert!(reply["diagnosis"].as_str().unwrap().contains("cpu1"));
    }
}

#[test]
fn mtu_blackhole_is_diagnosed_with_lengths() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("mtu-blackhole");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    let (code, _) = lab.curl("pod-nettest", "http://10.244.184.84/bytes/200000");
    assert_eq!(code, 28);
    let journeys = follow.stop();
    let too_big: Vec<_> = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped" && j["drop"]["reason"] == "PKT_TOO_BIG")
        .collect();
    assert!(!too_big.is_empty(), "{journeys:#?}");
    let hint = too_big[0]["drop"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("vxlan.calico") && hint.contains("MTU 1450"),
        "{hint}"
    );
}

#[test]
fn no_endpoints_is_diagnosed_as_such() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("no-endpoints");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    let (code, _) = lab.curl("pod-nettest", "http://10.109.60.89/");
    assert_eq!(code, 7);
    let journeys = follow.stop();
    let syn = requests(&journeys, "SYN");
    assert!(!syn.is_empty(), "{journeys:#?}");
    assert_eq!(syn[0]["verdict"], "dropped", "{:#}", syn[0]);
    let hint = syn[0]["drop"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("Service default/nginx-test has no endpoints"),
        "{hint}"
    );
}

#[test]
fn nodeport_from_outside_and_same_node_pod_to_pod() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["172.30.1.10", "svc/webapp"]);
    let (code, page) = lab.curl("client", "http://172.30.1.43:32065/");
    assert_eq!(code, 0, "{page}");
    let journeys = follow.stop();
    let syn = requests(&journeys, "SYN");
    assert_eq!(syn.len(), 1, "{journeys:#?}");
    let syn = syn[0];
    assert_eq!(syn["verdict"], "delivered", "{syn:#}");
    let dnat = &hops(syn, "service_dnat")[0]["nat"];
    assert_eq!(dnat["service"], "default/webapp");
    assert!(
        dnat["endpoint_pod"]
            .as_str()
            .unwrap()
            .starts_with("default/webapp-")
    );
    assert_eq!(hops(syn, "node_ingress")[0]["node"], "cpu1");

    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-x2k8p"]);
    assert!(lab.ping("pod-nettest", "10.244.102.138"));
    let journeys = follow.stop();
    let echo = requests(&journeys, "echo-request");
    assert!(!echo.is_empty());
    for j in echo {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert!(
            !has_hop(j, "node_egress"),
            "same node: never leaves cpu2: {j:#}"
        );
        assert!(
            j["hops"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["node"] == "cpu2" || h["node"].is_null())
        );
    }
}

#[test]
fn drops_in_another_network_with_the_same_addresses_are_not_reported() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    // Another cluster on the same machine, with the very same Pod addresses.
    let other = Lab::up_named("b", "healthy");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    // In the other lab, datagrams from nettest to a port nobody listens on: NO_SOCKET
    // drops in that lab's nginx Pod, addressed exactly like the followed flow.
    for _ in 0..20 {
        other.exec_ok(
            "pod-nettest",
            &["bash", "-c", "echo x > /dev/udp/10.244.184.84/9"],
        );
    }
    assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
    let journeys = follow.stop();
    assert!(!journeys.is_empty());
    // The other lab's datagrams died in a namespace this follow does not trace: not shown.
    // Every journey shown was seen in one of the followed lab's namespaces (a drop without a
    // device is placed by its socket's namespace).
    for journey in &journeys {
        assert_ne!(journey["protocol"], "udp", "{journey:#}");
        assert_ne!(journey["drop"]["reason"], "NO_SOCKET", "{journey:#}");
        assert!(
            journey["hops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["observed"] == true && h["node"].is_string()),
            "{journey:#}"
        );
    }
}

/// Sends one Ethernet frame that says IPv4 but whose header length (3 words) is below the
/// minimum, from `interface` inside the network namespace at `netns`: a frame no parser may
/// read.
fn send_unreadable_ipv4_frame(netns: &std::path::Path, interface: &str) {
    tracer_netns::run_in_scoped(netns, || {
        let ifindex = tracer_netns::ifindex(interface).expect("interface in the namespace");
        let mut frame = vec![0xff; 6]; // broadcast
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        // Version 4, IHL 3; then the rest of a 20-byte header: ICMP, 10.244.102.137 →
        // 10.244.184.84.
        frame.extend_from_slice(&[0x43, 0, 0, 20, 0, 1, 0, 0, 64, 1, 0, 0]);
        frame.extend_from_slice(&[10, 244, 102, 137, 10, 244, 184, 84]);
        // SAFETY: plain socket calls on a descriptor this closure owns and closes.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut to: libc::sockaddr_ll = std::mem::zeroed();
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_ifindex = i32::try_from(ifindex).unwrap();
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&frame[..6]);
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&to).cast(),
                u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap(),
            );
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(sent, 34, "send the frame: {error}");
        }
    })
    .expect("enter the Pod's namespace");
}

#[test]
fn kernel_log_reports_a_frame_the_parser_could_not_read() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(
        &lab,
        &["nettest", "nginx-test-7d9c4b6f5-abcde", "--kernel-log"],
    );
    // The frame crosses the TC hook on the Pod's eth0 before sendto returns, so its report
    // is in the log's ring buffer before the tracer is told to stop.
    send_unreadable_ipv4_frame(
        &std::path::Path::new("/run/netns").join(lab.ns("pod-nettest")),
        "eth0",
    );
    let (stdout, stderr) = follow.stop_raw();
    // Reported where it left the Pod (eth0, ifindex 2) and where it entered the node (the
    // Pod's host-side veth): the frame crossed two hooks.
    let reports: Vec<_> = stderr
        .lines()
        .filter(|l| {
            l.contains("a 34-byte IPv4 frame the parser could not read (version/IHL byte 43)")
        })
        .collect();
    assert_eq!(reports.len(), 2, "{stderr}");
    assert!(
        reports[0].starts_with("tracer: kernel debug: ifindex 2: "),
        "{stderr}"
    );
    let summary = tracer_tests::follow::summary_of(&stdout);
    assert_eq!(
        summary["counters"]["source"]["parse_failed"], 2,
        "{summary:#}"
    );
}
