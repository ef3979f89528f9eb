//! Sampling (`follow --sample N`, issue #14): of a busy flow, about one packet in N is traced
//! hop by hop and every packet is counted at each hook it crosses; the flows say how many
//! packets each path carried besides those traced, live and in replay. Needs root; serial.

use std::{
    net::UdpSocket,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::Value;
use tracer::netns;
use tracer_tests::{follow::Follow, lab::Lab, require_root, scaled, tracer};

const NGINX: &str = "nginx-test-7d9c4b6f5-abcde";
const NGINX_IP: &str = "10.244.184.84";
const PORT: u16 = 7007;
const CLOSED_PORT: u16 = 7008;
const SENT: u64 = 12_000;
const ONE_IN: u64 = 64;

/// A directory of this test's own, removed when it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-sampling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn netns_path(lab: &Lab, pod: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(lab.ns(&format!("pod-{pod}")))
}

/// A UDP socket in the nginx Pod that counts what it receives until told to stop.
struct Receiver {
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(lab: &Lab) -> Self {
        let socket = netns::run_in(&netns_path(lab, NGINX), || {
            UdpSocket::bind((NGINX_IP, PORT))
        })
        .expect("enter the nginx Pod's namespace")
        .expect("bind in the nginx Pod");
        // Room for every datagram a test sends even while this thread is not scheduled: the
        // tests count them exactly.
        let room: libc::c_int = 64 << 20;
        // SAFETY: a valid socket and an int option of the size given.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const room).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if socket.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Self {
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// A receiver that has had its first datagram: that one resolved the neighbours on the
    /// way, before anything is followed or counted.
    fn warmed_up(lab: &Lab) -> Self {
        let receiver = Self::start(lab);
        send(lab, 1, None);
        assert_eq!(receiver.wait_for(1), 1, "the lab delivers to the receiver");
        receiver
    }

    fn wait_for(&self, count: u64) -> u64 {
        tracer_tests::wait_until(
            "the receiver to have every datagram",
            scaled(Duration::from_secs(5)),
            || self.received.load(Ordering::Relaxed) >= count,
        );
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until `count` datagrams arrived (they are on their way: a lab path takes
    /// microseconds), then stops.
    fn finish(self, count: u64) -> u64 {
        self.wait_for(count)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `count` 32-byte datagrams from nettest, each with its number in its first bytes,
/// in bursts small enough for the receiver's socket never to overflow; datagram number
/// `stray` (if any) goes to a port nothing listens on, where the kernel drops it.
fn send(lab: &Lab, count: u64, stray: Option<u64>) {
    let target = format!("{NGINX_IP}:{PORT}");
    let closed = format!("{NGINX_IP}:{CLOSED_PORT}");
    netns::run_in(&netns_path(lab, "nettest"), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut payload = [0u8; 32];
        for i in 0..count {
            payload[..8].copy_from_slice(&i.to_be_bytes());
            let to = if Some(i) == stray { &closed } else { &target };
            socket.send_to(&payload, to).unwrap();
            if i % 16 == 15 {
                thread::sleep(Duration::from_micros(500));
            }
        }
    })
    .expect("enter nettest's namespace");
}

/// Follows nettest's UDP to the nginx Pod, one datagram in 1024 traced.
fn follow_sampled_udp(lab: &Lab) -> Follow {
    Follow::start(
        lab,
        &["nettest", NGINX, "--sample", "1024", "--proto", "udp"],
    )
}

/// The `flow_path` lines of `--output json --flows`.
fn flow_paths(journeys: &[Value]) -> Vec<&Value> {
    journeys.iter().filter_map(|v| v.get("flow_path")).collect()
}

#[test]
fn a_sampled_udp_stream_is_traced_one_in_n_whole_and_every_packet_is_counted() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let dir = TempDir::new();
    let recording = dir.0.join("sampled.trace");
    let receiver = Receiver::warmed_up(&lab);
    let one_in = ONE_IN.to_string();
    let follow = Follow::start(
        &lab,
        &[
            "nettest",
            NGINX,
            "--sample",
            &one_in,
            "--proto",
            "udp",
            "--port",
            "7007",
            "--flows",
            "--record",
            recording.to_str().unwrap(),
        ],
    );
    send(&lab, SENT, None);
    let received = receiver.finish(1 + SENT) - 1;
    assert_eq!(received, SENT, "the lab delivered every datagram");
    let (lines, stderr) = follow.stop_with_stderr();

    let journeys: Vec<&Value> = lines
        .iter()
        .filter(|v| v.get("flow_path").is_none())
        .collect();
    let traced = journeys.len() as u64;
    let expected = SENT / ONE_IN;
    assert!(
        (expected / 2..=expected * 2).contains(&traced),
        "about one datagram in {ONE_IN} traced: {traced} of {SENT} ({stderr})"
    );
    // Every hook made the same choice: each traced datagram is whole, on one path.
    for journey in &journeys {
        assert_eq!(journey["verdict"], "delivered", "{journey:#}");
    }
    let paths = flow_paths(&lines);
    assert_eq!(paths.len(), 1, "one path: {paths:#?}");
    let path = paths[0];
    assert_eq!(path["packets"], traced, "{path:#}");
    let more = path["more_counted"]
        .as_u64()
        .expect("counted besides traced");
    assert_eq!(
        traced + more,
        SENT,
        "every datagram traced or counted, once: {path:#}"
    );

    // Replay shows the same flows from the recording.
    let replayed = tracer()
        .args(["replay", "--output", "json", "--flows"])
        .arg(&recording)
        .output()
        .expect("replay");
    assert!(replayed.status.success(), "{replayed:?}");
    let replayed = tracer_tests::follow::journeys_of(&String::from_utf8_lossy(&replayed.stdout));
    let replayed_paths = flow_paths(&replayed);
    assert_eq!(
        replayed_paths, paths,
        "replay's flows are the live session's"
    );
}

/// Drops are never sampled away: one datagram in 100,000 of a sampled stream sent where
/// nothing listens is a dropped journey of its own, with where and why.
#[test]
fn the_one_drop_in_a_sampled_stream_is_its_own_journey() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let receiver = Receiver::warmed_up(&lab);
    let follow = follow_sampled_udp(&lab);
    const FLOOD: u64 = 100_000;
    let stray = FLOOD / 2;
    send(&lab, FLOOD, Some(stray));
    assert_eq!(
        receiver.finish(FLOOD),
        FLOOD,
        "all but the stray one, and the warm-up"
    );
    let journeys = follow.stop();
    let dropped: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["verdict"] == "dropped")
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:#?}");
    let drop = dropped[0];
    assert_eq!(drop["original"]["dport"], CLOSED_PORT, "{drop:#}");
    assert_eq!(drop["drop"]["node"], "cpu1", "{drop:#}");
    // About 98 expected: the hash's top bits of 100,000 datagrams.
    assert!(
        journeys.len() < 3 * FLOOD as usize / 1024,
        "the rest sampled one in 1024: {} journeys",
        journeys.len()
    );
}

/// A sampled TCP stream (iperf3, about a second): every hook chose alike — no traced
/// journey lost a hop — the connections' openings are all traced, and the path's counted
/// packets are many times those traced.
#[test]
fn a_sampled_tcp_stream_keeps_every_traced_journey_whole_and_its_openings() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let nginx = lab.ns(&format!("pod-{NGINX}"));
    let nettest = lab.ns("pod-nettest");
    let server = tracer_tests::ChildGuard(
        std::process::Command::new("ip")
            .args(["netns", "exec", &nginx, "iperf3", "-s", "-1", "-p", "5301"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 -s"),
    );
    let follow = Follow::start(
        &lab,
        &[
            "nettest", NGINX, "--sample", "64", "--proto", "tcp", "--port", "5301", "--flows",
        ],
    );
    // The server listens once its socket is bound: retry the client until it connects.
    let mut client = None;
    tracer_tests::wait_until("iperf3 to connect", scaled(Duration::from_secs(10)), || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &nettest])
            .args(["iperf3", "-c", NGINX_IP, "-p", "5301", "-t", "1", "-J"])
            .output()
            .expect("iperf3 -c");
        let done = out.status.success();
        client = Some(out);
        done
    });
    drop(server);
    let report: Value = serde_json::from_slice(&client.unwrap().stdout).expect("iperf3 -J");
    let sent = report["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    assert!(sent > 1_000_000, "iperf3 sent {sent} bytes");
    let lines = follow.stop();
    let journeys: Vec<&Value> = lines
        .iter()
        .filter(|v| v.get("flow_path").is_none())
        .collect();
    // A traced segment is whole. TCP may discard a segment it already has (a
    // retransmission: TCP_OLD_SEQUENCE): a drop is traced whatever the sample chose, so an
    // untraced segment's drop is a journey of its own, whose earlier hops were counted.
    for journey in &journeys {
        let observed = journey["hops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["observed"] == true)
            .count();
        let whole = journey["verdict"] == "delivered";
        let drop_only = journey["verdict"] == "dropped" && observed == 1;
        assert!(whole || drop_only, "{journey:#}");
        if drop_only {
            let note = journey["hops"][0]["note"].as_str().unwrap_or_default();
            assert!(note.contains("sampled"), "{journey:#}");
        }
    }
    // iperf3 opens a control connection and a data connection: both SYNs are traced.
    let syns = journeys.iter().filter(|j| j["summary"] == "SYN").count();
    assert!(syns >= 2, "{syns} SYNs among {} journeys", journeys.len());
    let paths = flow_paths(&lines);
    let request = paths
        .iter()
        .find(|p| p["flow"]["direction"] == "request")
        .expect("a request path");
    let traced = request["packets"].as_u64().unwrap();
    let more = request["more_counted"].as_u64().unwrap();
    assert!(
        more > traced * 8,
        "one in 64 traced: {traced} traced, {more} more counted"
    );
}

/// More connections than the kernel's table of hops holds: visited in turn, each hop's
/// entry is evicted before the next packet of its connection comes, and often before a read
/// found it. What was counted and evicted unread is said in the summary, not left out.
#[test]
fn counts_a_thrashed_table_of_hops_evicted_unread_are_said() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let receiver = Receiver::warmed_up(&lab);
    let follow = follow_sampled_udp(&lab);
    // Connections of about 6 hops each, 1.4 times as many places as the table and the
    // slots hold together (on 2 CPUs: 31,061 connections, about 180,000 places, against
    // 131,072 entries and 2 × 1,024 slots), so each entry is evicted before its next packet.
    // Their ports are below the ephemeral range, where nothing else binds.
    let cpus = aya::util::nr_cpus().expect("the possible CPUs");
    let holds = tracer::ebpf::hop_counts_capacity(cpus) as usize
        + cpus * tracer_common::HOP_SLOTS_LEN as usize;
    let connections = u16::try_from(holds * 7 / 5 / 6).expect("fewer connections than ports");
    let first_port = 32_768u16
        .checked_sub(connections)
        .filter(|&port| port >= 1_024)
        .expect("as many unprivileged ports below the ephemeral range as connections");
    const ROUNDS: u64 = 3;
    let target = format!("{NGINX_IP}:{PORT}");
    netns::run_in(&netns_path(&lab, "nettest"), move || {
        for _ in 0..ROUNDS {
            for (i, port) in (first_port..first_port + connections).enumerate() {
                let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap();
                socket.send_to(&[0u8; 32], &target).unwrap();
                if i % 16 == 15 {
                    thread::sleep(Duration::from_micros(500));
                }
            }
        }
    })
    .expect("enter nettest's namespace");
    let sent = u64::from(connections) * ROUNDS;
    receiver.finish(1 + sent);
    let (_, stderr) = follow.stop_with_stderr();
    let said =
        "hook crossings counted but not read (the kernel's table of hops evicted them first): ";
    let evicted: u64 = stderr
        .split(said)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the summary says what eviction lost: {stderr}"));
    // Each datagram crosses fewer than 10 TC hooks in the lab.
    assert!(
        evicted > 0 && evicted < sent * 10,
        "{evicted} of at most {} crossings: {stderr}",
        sent * 10
    );
}

/// A long session of short connections: once their hops are idle, the slots they took in
/// the kernel's per-CPU table go to newer hops, and a connection that comes back after its
/// slots went to others is still counted exactly — what it counted there before is carried
/// on.
#[test]
fn idle_hop_slots_go_to_new_hops_and_every_packet_is_still_counted() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let receiver = Receiver::warmed_up(&lab);
    let follow = Follow::start(
        &lab,
        &[
            "nettest",
            NGINX,
            "--sample",
            "64",
            "--proto",
            "udp",
            "--port",
            "7007",
            "--flows",
            "--kernel-stats",
        ],
    );
    // The long connection, from a port of its own; the short ones from ports below the
    // ephemeral range, one datagram each, over 5 s: hops idle for 2 s are marked (a read a
    // second), so the later ones find the earlier ones' slots, and the long one's, given up.
    // The long one comes back slowly, over about 4 s: once the short hops in its slots are
    // idle in turn, it takes them back, its count there starting again from 1.
    const LONG_PORT: u16 = 7100;
    const BEFORE: u64 = 3_000;
    const AFTER: u64 = 3_000;
    const SHORT: u16 = 2_000;
    const FIRST_SHORT: u16 = 20_000;
    let target = format!("{NGINX_IP}:{PORT}");
    netns::run_in(&netns_path(&lab, "nettest"), move || {
        let long = UdpSocket::bind(("0.0.0.0", LONG_PORT)).unwrap();
        let send_long = |from: u64, count: u64, pause: Duration| {
            for i in from..from + count {
                long.send_to(&i.to_be_bytes(), &target).unwrap();
                if i % 16 == 15 {
                    thread::sleep(pause);
                }
            }
        };
        send_long(0, BEFORE, Duration::from_micros(500));
        for port in FIRST_SHORT..FIRST_SHORT + SHORT {
            let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            socket
                .send_to(&u64::from(port).to_be_bytes(), &target)
                .unwrap();
            thread::sleep(Duration::from_micros(2_500));
        }
        send_long(BEFORE, AFTER, Duration::from_millis(20));
    })
    .expect("enter nettest's namespace");
    let sent = BEFORE + AFTER + u64::from(SHORT);
    assert_eq!(receiver.finish(1 + sent) - 1, sent, "the lab delivered all");
    let (lines, stderr) = follow.stop_with_stderr();

    let said = "kernel counting: ";
    let taken: u64 = stderr
        .split(said)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the summary says how many slots were taken: {stderr}"));
    assert!(taken > 0, "idle slots went to new hops: {stderr}");

    let long_traced = lines
        .iter()
        .filter(|v| v.get("flow_path").is_none())
        .filter(|v| v["original"]["sport"] == LONG_PORT)
        .count() as u64;
    let paths = flow_paths(&lines);
    assert_eq!(paths.len(), 1, "one path: {paths:#?}");
    // Each short connection is one datagram: traced, it has no more; untraced, it crossed
    // no place a traced packet crossed. So what the path counted besides is the long one's.
    let more = paths[0]["more_counted"].as_u64().expect("counted besides");
    assert_eq!(
        long_traced + more,
        BEFORE + AFTER,
        "every datagram of the long connection traced or counted, once ({taken} slots taken): {:#}",
        paths[0]
    );
}
