//! A drop is the packet's fate or it is not a drop (issue #10): copies of a packet that
//! sockets discard (every raw socket gets a clone of each echo reply) and packets purged
//! from a socket's queue after delivery never make a journey "dropped". Needs root; serial.

use std::{
    process::{Command, Output, Stdio},
    thread,
};

use serde_json::Value;
use tracer_tests::{follow::Follow, lab::Lab, require_root};

/// Runs `ping ARGS 10.244.184.84` in nettest; returns its output.
fn ping(lab: &Lab, args: &[&str]) -> thread::JoinHandle<Output> {
    let mut argv: Vec<String> = vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        lab.ns("pod-nettest"),
        "ping".into(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.push("10.244.184.84".into());
    thread::spawn(move || {
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .expect("ping")
    })
}

/// Echo requests ping says it sent and replies it received.
fn transmitted_received(out: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping said: {text}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn count(journeys: &[Value], summary: &str, verdict: &str) -> usize {
    journeys
        .iter()
        .filter(|j| j["summary"] == summary && j["verdict"] == verdict)
        .count()
}

/// Four pings at once, each with its own raw socket: every echo reply is cloned to all
/// four, and three of the clones are refused by the other pings' socket filters. With 0 %
/// loss there are no dropped journeys: one delivered journey per request and per reply.
#[test]
fn concurrent_pings_make_no_phantom_drops() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    let pings: Vec<_> = (0..4)
        .map(|_| ping(&lab, &["-c", "20", "-i", "0.05", "-q"]))
        .collect();
    let results: Vec<_> = pings.into_iter().map(|p| p.join().unwrap()).collect();
    let (journeys, stderr) = follow.stop_with_stderr();
    let mut sent = 0;
    for out in &results {
        let (transmitted, received) = transmitted_received(out);
        assert_eq!(transmitted, received, "ping lost nothing");
        sent += transmitted;
    }
    let dropped: Vec<_> = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped")
        .collect();
    assert!(dropped.is_empty(), "phantom drops: {dropped:#?}");
    assert_eq!(count(&journeys, "echo-request", "delivered") as u64, sent);
    assert_eq!(
        count(&journeys, "echo-reply", "delivered") as u64,
        sent,
        "one journey per reply, its copies' discards noted in it: {stderr}"
    );
    let noted = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-reply")
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

/// A flood ping beside a normal one: thousands of replies, each copied to both raw
/// sockets; still not one dropped journey while ping reports no loss.
#[test]
fn a_flood_ping_beside_a_normal_one_makes_no_phantom_drops() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    let normal = ping(&lab, &["-c", "10", "-i", "0.1", "-q"]);
    let flood = ping(&lab, &["-f", "-c", "2000", "-q"]);
    let (normal, flood) = (normal.join().unwrap(), flood.join().unwrap());
    let (journeys, stderr) = follow.stop_with_stderr();
    let (n_sent, n_received) = transmitted_received(&normal);
    let (f_sent, f_received) = transmitted_received(&flood);
    assert_eq!(n_sent, n_received);
    assert_eq!(f_sent, f_received, "the flood lost nothing");
    let dropped = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped")
        .count();
    assert_eq!(dropped, 0, "phantom drops under a flood; {stderr}");
    let replies = count(&journeys, "echo-reply", "delivered") as u64;
    // Every reply is a journey unless the kernel could not hand its events over, which the
    // summary counts.
    assert!(
        replies == n_sent + f_sent || stderr.contains("ring buffer full"),
        "{replies} replies for {} requests: {stderr}",
        n_sent + f_sent
    );
}
