//! Drops on a kernel whose `kfree_skb` tracepoint has no reason argument (before Linux
//! 5.17), tested on any kernel by forcing that program (`--drop-hook no-reason`): the drop
//! is still reported where it happened, says "reason unknown on this kernel", and the drop
//! fate rule still tells a packet's end from its copies' (issue #12). Needs root; serial.

use std::process::{Command, Stdio};

use tracer_tests::{
    follow::{Follow, of_summary},
    lab::Lab,
    require_root,
};

const NO_REASON: [&str; 2] = ["--drop-hook", "no-reason"];

fn follow_without_reasons(lab: &Lab) -> Follow {
    let mut args = vec!["nettest", "nginx-test-7d9c4b6f5-abcde"];
    args.extend(NO_REASON);
    let follow = Follow::start(lab, &args);
    let stderr = follow.stderr_so_far();
    assert!(
        stderr.contains("kfree_skb_no_reason (tp_btf)"),
        "the forced hook is the one attached: {stderr}"
    );
    follow
}

/// The seed incident: the reply dies on cpu1 for want of a route. Without the kernel's
/// reason it is still reported there, as dropped, and the table's missing route is named.
#[test]
fn a_drop_without_its_reason_is_reported_where_it_happened() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let follow = follow_without_reasons(&lab);
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let journeys = follow.stop();
    let requests = of_summary(&journeys, "echo-request");
    assert!(!requests.is_empty(), "{journeys:#?}");
    assert!(requests.iter().all(|j| j["verdict"] == "delivered"));
    let replies = of_summary(&journeys, "echo-reply");
    assert!(!replies.is_empty(), "{journeys:#?}");
    for reply in replies {
        assert_eq!(reply["verdict"], "dropped", "{reply:#}");
        let drop = &reply["drop"];
        assert_eq!(drop["node"], "cpu1", "{reply:#}");
        assert_eq!(drop["reason"], "unknown", "{reply:#}");
        let hint = drop["hint"].as_str().unwrap();
        assert!(hint.contains("reason unknown on this kernel"), "{hint}");
        assert!(
            hint.contains("10.244.102.128/26"),
            "the routing table's missing block is named: {hint}"
        );
    }
}

/// Concurrent pings: each echo reply is cloned to every raw socket and the clones the
/// other pings' filters refuse are freed. Without reasons those frees are still copies
/// (their data is shared), never the reply's fate.
#[test]
fn copies_freed_without_a_reason_are_not_drops() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = follow_without_reasons(&lab);
    let pings: Vec<_> = (0..3)
        .map(|_| {
            Command::new("ip")
                .args(["netns", "exec", &lab.ns("pod-nettest"), "ping"])
                .args(["-c", "10", "-i", "0.05", "-q", "10.244.184.84"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("ping")
        })
        .collect();
    for mut ping in pings {
        assert!(
            ping.wait().expect("ping ran").success(),
            "ping lost nothing"
        );
    }
    let (journeys, stderr) = follow.stop_with_stderr();
    let dropped: Vec<_> = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped")
        .collect();
    assert!(dropped.is_empty(), "phantom drops: {dropped:#?}");
    let replies = of_summary(&journeys, "echo-reply");
    assert_eq!(replies.len(), 30, "one journey per reply: {stderr}");
    assert!(replies.iter().all(|j| j["verdict"] == "delivered"));
    let noted = replies
        .iter()
        .filter(|j| {
            j["hops"].as_array().unwrap().iter().any(|h| {
                h["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("a copy of it")
            })
        })
        .count();
    assert!(noted > 0, "the discarded copies are shown as what they are");
}
