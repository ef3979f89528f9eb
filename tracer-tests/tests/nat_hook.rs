//! The NAT rewrite observed (issue #12): where fentry or kprobes work, `nf_nat_manip_pkt`
//! reports each rewrite with its conntrack entry, and the Service DNAT and the reply's
//! un-DNAT hops are observed (●); where neither works (this project's development machine),
//! the same hops are inferred and say why. Which one is expected is decided from `tracer
//! doctor`'s own probes, so each kernel is held to what it can do. Needs root; serial.

use std::collections::BTreeSet;

use serde_json::Value;
use tracer_tests::{
    follow::{Follow, hops, of_summary},
    lab::Lab,
    require_root, tracer,
};

const SERVICE: &str = "10.109.60.89";

/// Whether this kernel runs fentry or kprobe programs, by doctor's probes.
fn kernel_functions_traceable() -> bool {
    let out = tracer()
        .args(["doctor", "--output", "json"])
        .output()
        .expect("run tracer doctor");
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor prints JSON");
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| (c["name"] == "kprobe" || c["name"] == "fentry") && c["status"] == "available")
}

/// The NAT hop of `kind` in `journey`, checked as observed (with the conntrack entry `nf_nat_manip_pkt`
/// saw) or as inferred (saying why).
fn nat_hop<'a>(journey: &'a Value, kind: &str, observed: bool) -> &'a Value {
    let found = hops(journey, kind);
    assert_eq!(found.len(), 1, "one {kind} hop: {journey:#}");
    let hop = found[0];
    assert_eq!(hop["observed"], observed, "{journey:#}");
    if observed {
        assert!(hop["inferred_from"].is_null(), "{journey:#}");
        assert!(!hop["nat"]["conntrack"].is_null(), "{journey:#}");
        assert!(
            hop["note"].as_str().unwrap().contains("conntrack "),
            "{journey:#}"
        );
    } else {
        assert!(hop["nat"]["conntrack"].is_null(), "{journey:#}");
        let from = hop["inferred_from"].as_str().unwrap();
        assert!(from.contains("no NAT hook"), "{journey:#}");
    }
    hop
}

#[test]
fn service_dnat_and_undnat_are_observed_with_conntrack_where_the_kernel_allows() {
    if !require_root() {
        return;
    }
    let observed = kernel_functions_traceable();
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    let stderr = follow.stderr_so_far();
    if observed {
        assert!(stderr.contains("NAT rewrites observed"), "{stderr}");
    } else {
        assert!(stderr.contains("no NAT hook ("), "{stderr}");
    }
    // kube-proxy picks an endpoint at random: 40 connections reach all 3 but for odds of
    // about 3 in 10 million.
    for _ in 0..40 {
        let (code, page) = lab.curl("pod-nettest", &format!("http://{SERVICE}/"));
        assert_eq!(code, 0, "{page}");
    }
    let journeys = follow.stop();

    let syns = of_summary(&journeys, "SYN");
    assert_eq!(syns.len(), 40, "{journeys:#?}");
    let mut endpoints = BTreeSet::new();
    for syn in &syns {
        assert_eq!(syn["verdict"], "delivered", "{syn:#}");
        let hop = nat_hop(syn, "service_dnat", observed);
        let nat = &hop["nat"];
        assert_eq!(nat["service"], "default/nginx-test", "{syn:#}");
        assert_eq!(nat["endpoints_total"], 3, "{syn:#}");
        endpoints.insert(nat["endpoint_pod"].as_str().unwrap().to_owned());
        if observed {
            // The connection as the request set it up, and as the endpoint answers it.
            let conntrack = &nat["conntrack"];
            assert_eq!(conntrack["original"], nat["before"], "{syn:#}");
            assert_eq!(conntrack["reply"]["src"], nat["after"]["dst"], "{syn:#}");
            assert_eq!(conntrack["reply"]["sport"], 80, "{syn:#}");
            assert_eq!(conntrack["reply"]["dst"], nat["before"]["src"], "{syn:#}");
        }
    }
    assert_eq!(endpoints.len(), 3, "all 3 endpoints named: {endpoints:?}");

    let replies = of_summary(&journeys, "SYN,ACK");
    assert_eq!(replies.len(), 40, "{journeys:#?}");
    for reply in &replies {
        assert_eq!(reply["verdict"], "delivered", "{reply:#}");
        let hop = nat_hop(reply, "reply_undnat", observed);
        assert_eq!(hop["service"], "default/nginx-test", "{reply:#}");
        assert_eq!(hop["packet"]["src"], SERVICE, "{reply:#}");
        if observed {
            let conntrack = &hop["nat"]["conntrack"];
            assert_eq!(conntrack["original"]["dst"], SERVICE, "{reply:#}");
            assert_eq!(conntrack["reply"], hop["nat"]["before"], "{reply:#}");
        }
    }
}
