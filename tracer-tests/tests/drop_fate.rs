//! A drop is the packet's fate or it is not a drop (issue #10): copies of a packet that
//! sockets discard (every raw socket gets a clone of each echo reply) and packets purged
//! from a socket's queue after delivery never make a journey "dropped". Needs root; serial.

use std::{
    process::{Command, Output, Stdio},
    thread,
};

use serde_json::Value;
use tracer_tests::{
    ChildGuard,
    follow::{Follow, summary_of},
    lab::Lab,
    require_root,
};

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

/// A UDP socket in the nginx Pod that queues every datagram and reads none (nothing is freed,
/// so none is dropped); "ready" on stdout once bound.
const QUEUEING_SINK: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: room for the whole flood
s.bind(("0.0.0.0", 7777))
print("ready", flush=True)
time.sleep(600)
"#;

/// 15,000 datagrams to the sink — 8 hops each, three times what the hop ring buffer holds —
/// and after the first half one with TTL 1 to another port: cpu2 routes it, finds its TTL
/// spent and drops it (an ICMP time exceeded goes back).
const FLOOD_WITH_ONE_DROP: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(15000):
    if i == 7500:
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        t.sendto(b"the one drop", ("10.244.184.84", 7778))
    s.sendto(i.to_bytes(4, "big"), ("10.244.184.84", 7777))
"#;

/// One drop among 15,000 delivered datagrams, sent while the tracer reads nothing (it is
/// stopped, so the hop ring buffer overflows and hops are lost — counted): the drop is still
/// its own dropped journey, because drops travel in a ring buffer of their own.
#[test]
fn a_drop_in_a_flood_is_its_own_journey_even_when_hops_are_lost() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let mut sink = ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("pod-nginx-test-7d9c4b6f5-abcde")])
            .args(["python3", "-c", QUEUEING_SINK])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sink"),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sink.0.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("sink output");
    assert_eq!(ready.trim(), "ready");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    follow.pause();
    lab.exec_ok("pod-nettest", &["python3", "-c", FLOOD_WITH_ONE_DROP]);
    follow.resume();
    let (text, stderr) = follow.stop_raw();
    let journeys = tracer_tests::follow::journeys_of(&text);
    let summary = summary_of(&text);
    let source = &summary["counters"]["source"];
    assert!(
        source["ringbuf_full"].as_u64().unwrap() > 0,
        "hops were lost while the tracer was stopped: {stderr}"
    );
    assert_eq!(source["failures_lost"], 0, "{stderr}");
    assert!(
        stderr.contains("hops only: every drop and ICMP error arrived"),
        "the summary says no drop can be missing: {stderr}"
    );
    let dropped: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped")
        .collect();
    assert!(
        dropped
            .iter()
            .any(|j| j["original"]["dport"] == 7778 && j["drop"]["node"] == "cpu2"),
        "the TTL-1 datagram is a dropped journey on cpu2: {dropped:#?}\n{stderr}"
    );
    assert!(
        dropped.iter().all(|j| j["original"]["dport"] != 7777),
        "no datagram of the flood is called dropped: {dropped:#?}"
    );
    drop(sink);
}
