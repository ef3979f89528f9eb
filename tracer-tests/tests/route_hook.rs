//! Routing decisions observed from the `fib_table_lookup` tracepoint (issue #12): the route
//! hop is observed (●) with the table, gateway and device the kernel chose, in the same
//! journey as the packet's other hops; with `--no-route-hook` it is inferred from the
//! node's table, as on kernels without the tracepoint. Needs root; serial.

use serde_json::Value;
use tracer_tests::{
    follow::{Follow, hops, of_summary},
    lab::Lab,
    require_root,
};

fn kinds(journey: &Value) -> Vec<&str> {
    journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect()
}

/// Each route hop is followed, on the same node, by the hop that leaves through the device
/// the kernel chose.
fn route_leads_to_its_device(journey: &Value) {
    let hops = journey["hops"].as_array().unwrap();
    for (i, hop) in hops.iter().enumerate() {
        if hop["kind"] != "route_decision" {
            continue;
        }
        let dev = hop["route"]["dev"].as_str().unwrap_or_else(|| {
            panic!("an observed route names its device: {journey:#}");
        });
        let next = hops[i + 1..]
            .iter()
            .find(|h| h["observed"] == true && h["interface"].is_string())
            .unwrap_or_else(|| panic!("a hop after the route: {journey:#}"));
        assert_eq!(next["interface"], dev, "{journey:#}");
        assert_eq!(next["node"], hop["node"], "{journey:#}");
    }
}

#[test]
fn service_requests_and_replies_show_the_routes_the_kernel_chose() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    assert!(
        follow
            .stderr_so_far()
            .contains("fib_table_lookup (tp_btf): routing decisions observed"),
        "{}",
        follow.stderr_so_far()
    );
    for _ in 0..10 {
        let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{page}");
    }
    let journeys = follow.stop();
    let syns = of_summary(&journeys, "SYN");
    assert_eq!(syns.len(), 10, "one journey per SYN: {journeys:#?}");
    assert!(
        journeys.iter().all(|j| kinds(j) != ["route_decision"]),
        "a lookup always joins its packet's journey: {journeys:#?}"
    );
    for syn in &syns {
        assert_eq!(syn["verdict"], "delivered", "{syn:#}");
        let routes = hops(syn, "route_decision");
        assert!(!routes.is_empty(), "{syn:#}");
        for route in &routes {
            assert_eq!(route["observed"], true, "{syn:#}");
            assert!(route["inferred_from"].is_null(), "{syn:#}");
            assert_eq!(route["route"]["table"], "main", "{syn:#}");
            assert!(
                route["note"]
                    .as_str()
                    .unwrap()
                    .contains("seen by fib_table_lookup"),
                "{syn:#}"
            );
        }
        // kube-proxy's DNAT (PREROUTING) comes before the routing decision it feeds.
        let kinds = kinds(syn);
        let dnat = kinds.iter().position(|k| *k == "service_dnat").unwrap();
        let route = kinds.iter().position(|k| *k == "route_decision").unwrap();
        assert!(dnat < route, "{syn:#}");
        route_leads_to_its_device(syn);
    }
    let syn_acks = of_summary(&journeys, "SYN,ACK");
    assert_eq!(syn_acks.len(), 10, "{journeys:#?}");
    for reply in syn_acks {
        assert_eq!(reply["verdict"], "delivered", "{reply:#}");
        assert!(
            hops(reply, "route_decision")
                .iter()
                .all(|h| h["observed"] == true),
            "{reply:#}"
        );
        route_leads_to_its_device(reply);
    }
}

/// The seed incident: cpu1 has no route back to nettest's block, and the lookup that says
/// so is observed right before the drop.
#[test]
fn the_failed_lookup_is_observed_before_the_drop() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let journeys = follow.stop();
    let replies = of_summary(&journeys, "echo-reply");
    assert!(!replies.is_empty(), "{journeys:#?}");
    for reply in replies {
        assert_eq!(reply["verdict"], "dropped", "{reply:#}");
        let kinds = kinds(reply);
        let drop = kinds.iter().position(|k| *k == "drop").unwrap();
        assert_eq!(kinds[drop - 1], "route_decision", "{reply:#}");
        let route = &reply["hops"][drop - 1];
        assert_eq!(route["observed"], true, "{reply:#}");
        assert_eq!(route["node"], "cpu1", "{reply:#}");
        assert_eq!(route["route"]["kind"], "none", "{reply:#}");
    }
}

#[test]
fn without_the_route_hook_routes_are_inferred() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(
        &lab,
        &["nettest", "nginx-test-7d9c4b6f5-abcde", "--no-route-hook"],
    );
    assert!(follow.stderr_so_far().contains("no route hook"));
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    let journeys = follow.stop();
    let requests = of_summary(&journeys, "echo-request");
    assert!(!requests.is_empty(), "{journeys:#?}");
    for request in requests {
        let routes = hops(request, "route_decision");
        assert!(!routes.is_empty(), "{request:#}");
        for route in routes {
            assert_eq!(route["observed"], false, "{request:#}");
            let from = route["inferred_from"].as_str().unwrap();
            assert!(
                from.contains("routing table as tracer read it"),
                "{request:#}"
            );
        }
    }
}
