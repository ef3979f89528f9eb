//! kube-proxy's nftables and IPVS modes (issue #15, item 3): the lab lays each out as
//! kube-proxy does and switches between them in place leaving nothing of the old one, and
//! `tracer follow` names the Service DNAT hop by the rule of whichever mode the node runs,
//! found on the node (no flag tells it). Needs root; serial.
//!
//! IPVS needs the kernel's IP Virtual Server; where the kernel has none, `lab up
//! --proxy-mode ipvs` refuses with exit status 4 and says why, and the IPVS tests print that
//! and skip (run them in a VM with a distribution kernel: see the report of this change).

use std::collections::BTreeSet;

use serde_json::Value;
use tracer_tests::{
    follow::{Follow, hops},
    lab::Lab,
    require_root,
};

const NGINX_ENDPOINTS: [&str; 3] = ["10.244.102.138", "10.244.184.84", "10.244.5.203"];

/// A lab in IPVS mode, or `None` (having said why) on a kernel without IPVS.
fn ipvs_lab(scenario: &str) -> Option<Lab> {
    match Lab::try_up_in(scenario, "ipvs") {
        Ok(lab) => Some(lab),
        Err(out) if out.status.code() == Some(4) => {
            eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        Err(out) => panic!(
            "lab up --proxy-mode ipvs: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// 30 requests from nettest to svc/nginx-test, followed: every SYN delivered through one
/// Service DNAT hop named by `mode`'s rule (`check` looks at its `nat` and note, given the
/// endpoint's address), all three endpoints chosen, every SYN,ACK un-DNATed.
fn thirty_requests_name_the_dnat_rule(lab: &Lab, mode: &str, check: impl Fn(&Value, &str, &str)) {
    let follow = Follow::start(lab, &["nettest", "svc/nginx-test"]);
    for _ in 0..30 {
        let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{page}");
    }
    let journeys = follow.stop();
    let syns: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["direction"] == "request" && j["summary"] == "SYN")
        .collect();
    assert_eq!(syns.len(), 30, "one SYN journey per request: {journeys:#?}");
    let mut endpoints = BTreeSet::new();
    for syn in &syns {
        assert_eq!(syn["verdict"], "delivered", "{syn:#}");
        let dnat = hops(syn, "service_dnat");
        assert_eq!(dnat.len(), 1, "{syn:#}");
        let nat = &dnat[0]["nat"];
        assert_eq!(nat["service"], "default/nginx-test", "{nat:#}");
        assert_eq!(nat["proxy_mode"], mode, "{nat:#}");
        assert_eq!(nat["endpoints_total"], 3, "{nat:#}");
        let endpoint = nat["after"]["dst"].as_str().unwrap().to_owned();
        assert!(NGINX_ENDPOINTS.contains(&endpoint.as_str()), "{nat:#}");
        check(nat, dnat[0]["note"].as_str().unwrap(), &endpoint);
        assert_eq!(
            hops(syn, "pod_delivery")[0]["pod"],
            nat["endpoint_pod"],
            "{syn:#}"
        );
        endpoints.insert(endpoint);
    }
    assert_eq!(
        endpoints.len(),
        3,
        "all three endpoints chosen: {endpoints:?}"
    );

    let syn_acks: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["direction"] == "reply" && j["summary"] == "SYN,ACK")
        .collect();
    assert_eq!(syn_acks.len(), 30, "{journeys:#?}");
    for reply in syn_acks {
        assert_eq!(reply["verdict"], "delivered", "{reply:#}");
        let undnat = hops(reply, "reply_undnat");
        assert_eq!(undnat.len(), 1, "{reply:#}");
        assert_eq!(undnat[0]["nat"]["after"]["src"], "10.109.60.89");
    }
}

/// A request to svc/nginx-test without endpoints: refused at once (curl: connection
/// refused), and the followed SYN dropped with a hint naming the Service and `refusal`.
fn no_endpoints_is_diagnosed(lab: &Lab, refusal: &str) {
    let follow = Follow::start(lab, &["nettest", "svc/nginx-test"]);
    let (code, _) = lab.curl("pod-nettest", "http://10.109.60.89/");
    assert_eq!(code, 7, "refused (ICMP port unreachable), not timed out");
    let journeys = follow.stop();
    let syn = journeys
        .iter()
        .find(|j| j["direction"] == "request" && j["summary"] == "SYN")
        .unwrap_or_else(|| panic!("a SYN journey: {journeys:#?}"));
    assert_eq!(syn["verdict"], "dropped", "{syn:#}");
    assert_eq!(syn["drop"]["node"], "cpu2", "{syn:#}");
    let hint = syn["drop"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("Service default/nginx-test has no endpoints") && hint.contains(refusal),
        "{hint}"
    );
}

#[test]
fn nftables_mode_names_the_dnat_hop_by_its_endpoint_and_service_chains() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_in("healthy", "nftables");
    thirty_requests_name_the_dnat_rule(&lab, "nftables", |nat, note, endpoint| {
        let chain = nat["nft_chain"].as_str().unwrap();
        assert!(
            chain.starts_with("endpoint-")
                && chain.ends_with(&format!("-default/nginx-test/tcp/__{endpoint}/80")),
            "{nat:#}"
        );
        assert_eq!(
            nat["nft_service_chain"],
            "service-E674OMPI-default/nginx-test/tcp/"
        );
        // The iptables fields keep their meaning: no KUBE- chain did this.
        assert!(
            nat["chain"].is_null() && nat["service_chain"].is_null(),
            "{nat:#}"
        );
        assert!(nat["ipvs_virtual_server"].is_null(), "{nat:#}");
        assert!(note.contains(&format!("nftables chain {chain}")), "{note}");
    });
}

#[test]
fn nftables_mode_no_endpoints_is_rejected_by_the_no_endpoint_map() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_in("no-endpoints", "nftables");
    no_endpoints_is_diagnosed(
        &lab,
        "kube-proxy's nftables map no-endpoint-services sent it to reject-chain",
    );
}

#[test]
fn ipvs_mode_names_the_dnat_hop_by_its_virtual_and_real_server() {
    if !require_root() {
        return;
    }
    let Some(lab) = ipvs_lab("healthy") else {
        return;
    };
    thirty_requests_name_the_dnat_rule(&lab, "ipvs", |nat, note, endpoint| {
        assert_eq!(
            nat["ipvs_virtual_server"], "TCP 10.109.60.89:80 rr",
            "{nat:#}"
        );
        assert_eq!(
            nat["ipvs_real_server"],
            format!("{endpoint}:80 Masq"),
            "{nat:#}"
        );
        assert!(
            nat["chain"].is_null() && nat["nft_chain"].is_null(),
            "{nat:#}"
        );
        assert!(
            note.contains(&format!("IPVS TCP 10.109.60.89:80 rr → {endpoint}:80 Masq")),
            "{note}"
        );
    });
}

#[test]
fn ipvs_mode_no_endpoints_is_refused_by_the_empty_virtual_server() {
    if !require_root() {
        return;
    }
    let Some(lab) = ipvs_lab("no-endpoints") else {
        return;
    };
    no_endpoints_is_diagnosed(
        &lab,
        "its IPVS virtual server TCP 10.109.60.89:80 has no real server",
    );
}

/// Every scenario, switched in place in `mode`, shows its symptom through the Service
/// exactly as in iptables mode.
fn every_scenario_shows_its_symptom(lab: &Lab, mode: &str) {
    let service = "http://10.109.60.89/";
    for scenario in [
        "healthy",
        "wrong-interface",
        "vxlan",
        "cross-subnet",
        "mtu-blackhole",
        "no-endpoints",
    ] {
        lab.switch_to(scenario, mode);
        let (code, page) = lab.curl("pod-nettest", service);
        let expected = match scenario {
            "no-endpoints" => 7,
            // cpu1 cannot answer nettest: whichever endpoint is chosen there times out.
            "wrong-interface" => {
                assert!(!lab.ping("pod-nettest", "10.244.184.84"), "{mode}");
                continue;
            }
            _ => 0,
        };
        assert_eq!(code, expected, "{mode} {scenario}: {page}");
        if scenario == "mtu-blackhole" {
            let (code, _) = lab.curl("pod-nettest", "http://10.244.184.84/bytes/200000");
            assert_eq!(code, 28, "{mode}: a large response never arrives");
        }
        if scenario == "cross-subnet" {
            assert!(lab.ping("pod-nettest", "10.244.5.203"), "{mode}");
        }
    }
}

#[test]
fn every_scenario_works_in_nftables_and_ipvs_mode() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_in("healthy", "nftables");
    every_scenario_shows_its_symptom(&lab, "nftables");
    drop(lab);
    if let Some(lab) = ipvs_lab("healthy") {
        every_scenario_shows_its_symptom(&lab, "ipvs");
    }
}

/// `replace-pod` moves nginx-test's endpoint on cpu1 to a new Pod at 10.244.184.65:
/// kube-proxy's rules in `mode` follow on every node, and the Service keeps answering.
fn a_replaced_pod_moves_the_endpoint(lab: &Lab, mode: &str, shows: impl Fn(&str, &str) -> bool) {
    let out = lab.tracer(&["lab", "replace-pod", "nginx-test-7d9c4b6f5-abcde"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in ["cpu1", "cpu2", "gpu1"] {
        assert!(
            shows(node, "10.244.184.65"),
            "{mode} {node}: the new endpoint"
        );
        assert!(
            !shows(node, "10.244.184.84"),
            "{mode} {node}: the old one gone"
        );
    }
    for _ in 0..6 {
        let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{mode}: {page}");
    }
}

#[test]
fn a_replaced_pod_moves_the_endpoint_in_nftables_and_ipvs_mode() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_in("healthy", "nftables");
    a_replaced_pod_moves_the_endpoint(&lab, "nftables", |node, ip| {
        lab.exec_ok(node, &["nft", "list", "table", "ip", "kube-proxy"])
            .contains(&format!("dnat to {ip}:80"))
    });
    drop(lab);
    if let Some(lab) = ipvs_lab("healthy") {
        a_replaced_pod_moves_the_endpoint(&lab, "ipvs", |node, ip| {
            lab.exec_ok(node, &["ipvsadm", "-Ln"])
                .contains(&format!("-> {ip}:80"))
        });
    }
}

/// What kube-proxy left on a node, mode by mode: iptables' `KUBE-` chains, the
/// `kube-proxy` nftables table, `kube-ipvs0`.
fn kube_proxy_on(lab: &Lab, node: &str) -> (bool, bool, bool) {
    let iptables = lab.exec_ok(node, &["iptables-save"]).contains(":KUBE-");
    let nftables = lab
        .exec_ok(node, &["nft", "list", "tables"])
        .contains("table ip kube-proxy");
    let ipvs = lab
        .exec(node, &["ip", "link", "show", "kube-ipvs0"])
        .status
        .success();
    (iptables, nftables, ipvs)
}

#[test]
fn proxy_modes_switch_in_place_and_leave_nothing_of_the_old_one() {
    if !require_root() {
        return;
    }
    let host_before = tracer_tests::host_snapshot();
    let lab = Lab::up_in("healthy", "nftables");
    let answers = |lab: &Lab| {
        let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{page}");
        let (code, page) = lab.curl("client", "http://172.30.1.43:32065/");
        assert_eq!(code, 0, "NodePort: {page}");
    };
    let status =
        |lab: &Lab| String::from_utf8_lossy(&lab.tracer(&["lab", "status"]).stdout).into_owned();

    // nftables: kube-proxy's table, nothing in iptables; its maps as kube-proxy names them.
    answers(&lab);
    for node in ["cpu1", "cpu2", "gpu1"] {
        assert_eq!(kube_proxy_on(&lab, node), (false, true, false), "{node}");
    }
    let map = lab.exec_ok(
        "cpu2",
        &["nft", "list", "map", "ip", "kube-proxy", "service-ips"],
    );
    assert!(
        map.contains("10.109.60.89 . tcp . 80 : goto service-E674OMPI-default/nginx-test/tcp/"),
        "{map}"
    );
    assert!(status(&lab).contains("kube-proxy nftables mode"));

    // iptables: the KUBE- chains back, the table gone.
    lab.switch_to("healthy", "iptables");
    answers(&lab);
    for node in ["cpu1", "cpu2", "gpu1"] {
        assert_eq!(kube_proxy_on(&lab, node), (true, false, false), "{node}");
    }

    // IPVS, where the kernel has it: kube-ipvs0 and virtual servers, then none of it.
    let ipvs = lab.tracer(&["lab", "up", "--proxy-mode", "ipvs"]);
    match ipvs.status.code() {
        Some(0) => {
            answers(&lab);
            assert_eq!(kube_proxy_on(&lab, "cpu2"), (true, false, true));
            let table = lab.exec_ok("cpu2", &["ipvsadm", "-Ln"]);
            assert!(table.contains("TCP  10.109.60.89:80 rr"), "{table}");
            lab.switch_to("healthy", "nftables");
            let table = lab.exec_ok("cpu2", &["ipvsadm", "-Ln"]);
            assert!(!table.contains("TCP "), "virtual servers left: {table}");
            let sets = lab.exec_ok("cpu2", &["ipset", "list", "-n"]);
            assert!(!sets.contains("KUBE-"), "ipsets left: {sets}");
            assert_eq!(kube_proxy_on(&lab, "cpu2"), (false, true, false));
        }
        Some(4) => {
            // Refused before anything changed: still iptables mode, still answering.
            let said = String::from_utf8_lossy(&ipvs.stderr);
            assert!(
                said.contains("--proxy-mode ipvs needs the kernel's IP Virtual Server"),
                "{said}"
            );
            eprintln!("IPVS part skipped: {}", said.trim());
            answers(&lab);
            assert!(status(&lab).contains("kube-proxy iptables mode"));
        }
        other => panic!(
            "lab up --proxy-mode ipvs: {other:?} {}",
            String::from_utf8_lossy(&ipvs.stderr)
        ),
    }

    let unknown = lab.tracer(&["lab", "up", "--proxy-mode", "userspace"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("valid modes: iptables, nftables, ipvs")
    );

    drop(lab);
    assert_eq!(
        host_before,
        tracer_tests::host_snapshot(),
        "the host namespace is exactly as it was"
    );
}
