//! Privileged end-to-end tests of the kernel programs: real TC and tp_btf hooks in real
//! network namespaces, real packets, events asserted as they come out of the ring buffer.
//! Needs root; run serially (`--test-threads=1`), as README's test command does.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tracer::{
    btf::Btf,
    drop_reason::DropReasons,
    ebpf::{self, LoadOptions},
    events::{self, EventStream},
    kernel_layout::KernelOffsets,
    netns,
    probes::{
        kfree_skb,
        tc::{self, AttachMode, Direction},
    },
};
use tracer_common::{PacketEvent, kind};
use tracer_tests::{ChildGuard, NetnsPair, require_root, run};

/// The way `follow --attach auto` attaches on this kernel: TCX where it loads (6.6+),
/// netlink filters otherwise. The tests' namespaces are theirs, so either is cleaned up with
/// them.
fn attach_mode_here() -> AttachMode {
    let mut ebpf = ebpf::load(&LoadOptions {
        trace_all: true,
        offsets: None,
        kernel_log: false,
        sample_shift: 0,
    })
    .expect("load");
    match tracer::follow::attach::probe_tcx(&mut ebpf) {
        Ok(()) => AttachMode::Tcx,
        Err(_) => AttachMode::Netlink,
    }
}

fn ip(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// Collects events until `done` says so or `timeout` passes.
fn collect(
    stream: &mut EventStream,
    timeout: Duration,
    done: impl Fn(&[PacketEvent]) -> bool,
) -> Vec<PacketEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    let mut records = Vec::new();
    while Instant::now() < deadline && !done(&events) {
        if stream
            .wait(Duration::from_millis(50))
            .expect("poll ring buffer")
        {
            stream.drain_into(&mut records);
            events.extend(records.drain(..).map(|r| *r.packet()));
        }
    }
    events
}

/// The programs loaded with this kernel's offsets, following `addresses`, the classifiers
/// attached to A's veth (from inside A's namespace) in `directions`, and `kfree_skb`
/// (with its reason) attached: the object, to keep the hooks, and its event stream.
fn hooked(
    pair: &NetnsPair,
    addresses: &[Ipv4Addr],
    directions: &[Direction],
) -> (aya::Ebpf, EventStream) {
    let btf = Btf::vmlinux().expect("kernel BTF");
    let offsets = KernelOffsets::from_btf(&btf).expect("struct offsets");
    let mut ebpf = ebpf::load(&LoadOptions {
        trace_all: false,
        offsets: Some(offsets),
        kernel_log: false,
        sample_shift: 0,
    })
    .expect("load eBPF object");
    events::follow_addresses(&mut ebpf, addresses).expect("filter map");
    let mode = attach_mode_here();
    let mut ebpf = netns::run_in(&pair.netns_path_a(), {
        let iface = pair.if_a.clone();
        let directions = directions.to_vec();
        move || {
            for direction in directions {
                tc::attach(&mut ebpf, &iface, direction, mode).expect("attach a classifier");
            }
            ebpf
        }
    })
    .expect("enter netns A");
    let aya_btf = aya::Btf::from_sys_fs().expect("aya BTF");
    kfree_skb::attach(&mut ebpf, &aya_btf, kfree_skb::DropHookChoice::Reason)
        .expect("attach tp_btf/kfree_skb");
    let stream = EventStream::take(&mut ebpf).expect("ring buffer");
    (ebpf, stream)
}

#[test]
fn tc_and_kfree_skb_events_name_addresses_interfaces_and_drop_reasons() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::create("ev");
    let (ebpf, mut stream) = hooked(
        &pair,
        &[pair.addr_a, pair.addr_b],
        &[Direction::Egress, Direction::Ingress],
    );

    let cookie_a = netns::run_in(&pair.netns_path_a(), netns::current_cookie)
        .unwrap()
        .unwrap();
    let cookie_b = netns::run_in(&pair.netns_path_b(), netns::current_cookie)
        .unwrap()
        .unwrap();
    let ifindex_a = netns::run_in(&pair.netns_path_a(), {
        let iface = pair.if_a.clone();
        move || netns::ifindex(&iface)
    })
    .unwrap()
    .unwrap();
    let ifindex_b = netns::run_in(&pair.netns_path_b(), {
        let iface = pair.if_b.clone();
        move || netns::ifindex(&iface)
    })
    .unwrap()
    .unwrap();

    // A ping, and a UDP datagram to a port nobody listens on (B drops it: NO_SOCKET).
    pair.exec_a(&[
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        &pair.addr_b.to_string(),
    ]);
    pair.exec_a(&[
        "bash",
        "-c",
        &format!("echo tracer > /dev/udp/{}/9", pair.addr_b),
    ]);

    let events = collect(&mut stream, Duration::from_secs(5), |events| {
        events
            .iter()
            .any(|e| e.header.kind == kind::KFREE_SKB && u16::from_be(e.dport) == 9)
            && events
                .iter()
                .filter(|e| e.header.kind == kind::TC_INGRESS && e.icmp_type == 0)
                .count()
                >= 2
    });

    let echo_requests: Vec<_> = events
        .iter()
        .filter(|e| e.header.kind == kind::TC_EGRESS && e.ip_proto == 1 && e.icmp_type == 8)
        .collect();
    assert_eq!(
        echo_requests.len(),
        2,
        "two echo requests leave A: {events:#?}"
    );
    for e in &echo_requests {
        assert_eq!(ip(e.saddr), pair.addr_a);
        assert_eq!(ip(e.daddr), pair.addr_b);
        assert_eq!(e.ifindex, ifindex_a, "seen on A's veth");
        assert_eq!(e.header.netns_cookie, cookie_a, "seen in A's namespace");
    }
    let replies: Vec<_> = events
        .iter()
        .filter(|e| e.header.kind == kind::TC_INGRESS && e.ip_proto == 1 && e.icmp_type == 0)
        .collect();
    assert_eq!(replies.len(), 2, "two echo replies reach A");
    assert_eq!(ip(replies[0].saddr), pair.addr_b);
    assert_eq!(
        replies[0].icmp_id, echo_requests[0].icmp_id,
        "reply matches request id"
    );

    let btf = Btf::vmlinux().expect("kernel BTF");
    let reasons = DropReasons::from_btf(&btf).expect("drop reasons");
    let drop = events
        .iter()
        .find(|e| {
            e.header.kind == kind::KFREE_SKB && e.ip_proto == 17 && u16::from_be(e.dport) == 9
        })
        .unwrap_or_else(|| panic!("the UDP datagram to a closed port is dropped: {events:#?}"));
    assert_eq!(ip(drop.saddr), pair.addr_a);
    assert_eq!(ip(drop.daddr), pair.addr_b);
    assert_eq!(reasons.name(drop.drop_reason), "NO_SOCKET");
    assert_eq!(
        drop.header.netns_cookie, cookie_b,
        "dropped in B's namespace"
    );
    assert_eq!(drop.ifindex, ifindex_b, "on B's veth");

    let loss = events::loss(&ebpf).expect("loss counters");
    assert_eq!(loss.ringbuf_full, 0);
    assert_eq!(stream.undecodable, 0);
}

/// Unconnected UDP with Don't Fragment set goes out with IP ID 0: two datagrams of one
/// length then have identical headers, and only their payloads tell them apart. Every way
/// the kernel side reads a datagram hashes its first 8 payload bytes as userspace computes
/// it — the TC fast path (A's egress), TC's general parser (a datagram with IP options),
/// and the `sk_buff` reader (`kfree_skb`: B drops them, no socket) — a payload shorter
/// than 8 bytes is left unhashed (0), and a payload outside the linear data (a UDP GSO
/// datagram, whose payload is in page fragments) is hashed through `bpf_skb_load_bytes` at
/// TC and left unhashed, never misread, where the `sk_buff`'s memory is read.
#[test]
fn udp_payloads_are_hashed_alike_wherever_they_are_read() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::create("ph");
    let (_ebpf, mut stream) = hooked(&pair, &[pair.addr_b], &[Direction::Egress]);

    let plain: [&[u8]; 3] = [b"\x12\x34query-one", b"\x56\x78query-one", b"short"];
    let with_options: &[u8] = b"options-payload";
    // Four 100-byte segments in one send, each starting with its own number.
    let gso: Vec<u8> = (1..=4u8).flat_map(|i| [i; 100]).collect();
    let target = std::net::SocketAddrV4::new(pair.addr_b, 9);
    netns::run_in(&pair.netns_path_a(), {
        let gso = gso.clone();
        move || {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            set_int_option(
                &socket,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            );
            for payload in plain {
                socket.send_to(payload, target).expect("send");
            }
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            // Four no-operation option bytes: a 24-byte IP header, off the fast path.
            set_option(&socket, libc::IPPROTO_IP, libc::IP_OPTIONS, &[1u8, 1, 1, 1]);
            socket.send_to(with_options, target).expect("send");
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            set_int_option(&socket, libc::SOL_UDP, UDP_SEGMENT, 100);
            socket.send_to(&gso, target).expect("send");
        }
    })
    .expect("enter netns A");

    let udp = |events: &[PacketEvent], hook: u16| -> Vec<PacketEvent> {
        let mut found: Vec<PacketEvent> = events
            .iter()
            .filter(|e| e.header.kind == hook && e.ip_proto == 17 && u16::from_be(e.dport) == 9)
            .copied()
            .collect();
        found.sort_by_key(|e| e.header.ts_ns);
        found
    };
    let events = collect(&mut stream, Duration::from_secs(5), |events| {
        udp(events, kind::TC_EGRESS).len() >= 5 && udp(events, kind::KFREE_SKB).len() >= 5
    });
    let hash = |payload: &[u8]| {
        payload
            .first_chunk::<8>()
            .map_or(0, |first| tracer_common::payload_hash(*first))
    };
    let segments: Vec<u32> = gso.chunks(100).map(hash).collect();
    let expected: Vec<u32> = plain
        .iter()
        .map(|p| hash(p))
        .chain([hash(with_options), segments[0]])
        .collect();
    assert_ne!(expected[0], expected[1]);

    let sent = udp(&events, kind::TC_EGRESS);
    let dropped = udp(&events, kind::KFREE_SKB);
    assert_eq!(sent.len(), 5, "{events:#?}");
    assert_eq!(
        sent.iter().map(|e| e.payload_hash).collect::<Vec<_>>(),
        expected
    );
    assert!(dropped.len() >= 5, "{events:#?}");
    assert_eq!(
        dropped[..4]
            .iter()
            .map(|e| e.payload_hash)
            .collect::<Vec<_>>(),
        expected[..4]
    );
    // The GSO datagram is dropped whole or as its segments: each drop either read its own
    // segment's first bytes or none.
    for drop in &dropped[4..] {
        assert!(
            drop.payload_hash == 0 || segments.contains(&drop.payload_hash),
            "a misread payload: {drop:#?}"
        );
    }
    // The case the hash exists for: nothing else in the headers differs.
    for seen in [&sent, &dropped] {
        assert_eq!(
            (seen[0].ip_id, seen[1].ip_id),
            (0, 0),
            "precondition: IP ID 0"
        );
        assert_eq!(seen[0].ip_len, seen[1].ip_len);
    }
}

/// `UDP_SEGMENT` from `linux/udp.h` (not in the libc crate): the segment size of UDP GSO.
const UDP_SEGMENT: libc::c_int = 103;

fn set_int_option(
    socket: &std::net::UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) {
    set_option(socket, level, name, &value.to_ne_bytes());
}

fn set_option(socket: &std::net::UdpSocket, level: libc::c_int, name: libc::c_int, value: &[u8]) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a valid socket, and a value buffer of the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {name}): {}",
        std::io::Error::last_os_error()
    );
}

/// A flood fills the hop ring buffer and loses hops, counted; a drop after it, while that
/// ring is still full, arrives through the ring buffer failures have to themselves. The
/// flood is to a socket in B that keeps every datagram queued (nothing is freed, so the only
/// drop is the one sent to a closed port).
#[test]
fn a_drop_in_a_flood_that_overflows_the_ring_buffer_still_arrives() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::create("fo");
    let (ebpf, mut stream) = hooked(&pair, &[pair.addr_b], &[Direction::Egress]);
    // 50,000 hops at A's egress: more than the 4 MiB ring holds (about 40,000), with
    // nobody reading until the end.
    let flooded: u32 = 50_000;
    let sink = netns::run_in(&pair.netns_path_b(), || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:7777").expect("bind");
        // Room for the whole flood (about 1 KiB of kernel memory per queued datagram).
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 256 << 20);
        socket
    })
    .unwrap();
    let (flood, closed) = (
        format!("{}:7777", pair.addr_b),
        format!("{}:7778", pair.addr_b),
    );
    netns::run_in(&pair.netns_path_a(), move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        for i in 0..flooded {
            socket.send_to(&i.to_be_bytes(), &flood).expect("send");
        }
        socket.send_to(b"the one drop", &closed).expect("send");
    })
    .unwrap();
    // Every hop at A's egress was written during `send_to`; B's drop may come a moment
    // later (its receive softirq can run in ksoftirqd): read until it is there.
    let events = collect(&mut stream, Duration::from_secs(10), |events| {
        events
            .iter()
            .any(|e| e.header.kind == kind::KFREE_SKB && u16::from_be(e.dport) == 7778)
    });
    let loss = events::loss(&ebpf).expect("loss counters");
    assert!(
        loss.ringbuf_full > 0,
        "the flood overflowed the hop ring buffer ({} events read)",
        events.len()
    );
    assert_eq!(loss.failures_lost, 0, "no drop or ICMP error was lost");
    let btf = Btf::vmlinux().expect("kernel BTF");
    let reasons = DropReasons::from_btf(&btf).expect("drop reasons");
    let drops: Vec<&PacketEvent> = events
        .iter()
        .filter(|e| e.header.kind == kind::KFREE_SKB && ip(e.daddr) == pair.addr_b)
        .collect();
    assert!(
        drops
            .iter()
            .any(|d| u16::from_be(d.dport) == 7778 && reasons.name(d.drop_reason) == "NO_SOCKET"),
        "the datagram to the closed port is reported dropped, flood or not: {drops:#?}"
    );
    let hops = u64::try_from(
        events
            .iter()
            .filter(|e| e.header.kind == kind::TC_EGRESS && ip(e.daddr) == pair.addr_b)
            .count(),
    )
    .unwrap();
    assert_eq!(
        hops + loss.ringbuf_full,
        u64::from(flooded) + 1,
        "every datagram's hop at A's egress read or counted lost"
    );
    drop(sink);
}

#[test]
fn unrelated_traffic_is_filtered_in_the_kernel() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::create("fl");
    let mut ebpf = ebpf::load(&LoadOptions {
        trace_all: false,
        offsets: None,
        kernel_log: false,
        sample_shift: 0,
    })
    .expect("load");
    // Follow an address that is not in this pair: nothing of the ping may come out.
    events::follow_addresses(&mut ebpf, &[Ipv4Addr::new(192, 0, 2, 77)]).unwrap();
    let mode = attach_mode_here();
    let mut ebpf = netns::run_in(&pair.netns_path_a(), {
        let iface = pair.if_a.clone();
        move || {
            tc::attach(&mut ebpf, &iface, Direction::Egress, mode).expect("attach");
            ebpf
        }
    })
    .unwrap();
    let mut stream = EventStream::take(&mut ebpf).unwrap();
    pair.exec_a(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        &pair.addr_b.to_string(),
    ]);
    let events = collect(&mut stream, Duration::from_millis(500), |_| false);
    assert!(
        events.is_empty(),
        "filtered traffic produced events: {events:#?}"
    );
}

/// Not a test on its own: the process `sigkill_leaves_no_program_attached` starts and kills.
#[test]
#[ignore = "helper process for sigkill_leaves_no_program_attached"]
fn helper_hold_tcx_link_until_killed() {
    let netns_name = std::env::var("TRACER_TEST_NETNS").expect("started by the sigkill test");
    let iface = std::env::var("TRACER_TEST_IFACE").unwrap();
    let mut ebpf = ebpf::load(&LoadOptions {
        trace_all: true,
        offsets: None,
        kernel_log: false,
        sample_shift: 0,
    })
    .unwrap();
    let path = std::path::PathBuf::from(format!("/run/netns/{netns_name}"));
    let ebpf = netns::run_in(&path, move || {
        tc::attach(&mut ebpf, &iface, Direction::Ingress, AttachMode::Tcx).unwrap();
        ebpf
    })
    .unwrap();
    let program = ebpf.program(tracer_common::programs::TC_INGRESS).unwrap();
    println!("attached program {}", program.info().unwrap().id());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigkill_leaves_no_program_attached() {
    if !require_root() {
        return;
    }
    // What a killed run leaves in netlink mode (no TCX) is tests/attach.rs's subject.
    if attach_mode_here() != AttachMode::Tcx {
        eprintln!("skipped: no TCX on this kernel, so links do not die with the process");
        return;
    }
    let pair = NetnsPair::create("kl");
    let qdiscs_before = pair.exec_a(&["tc", "qdisc", "show", "dev", &pair.if_a]);
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_hold_tcx_link_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TRACER_TEST_NETNS", &pair.netns_a)
            .env("TRACER_TEST_IFACE", &pair.if_a)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start helper"),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let program_id = stdout
        .lines()
        .map_while(Result::ok)
        // libtest may print `test NAME ... ` on the same line first.
        .find_map(|line| {
            line.split("attached program ")
                .nth(1)
                .map(|id| id.trim().to_owned())
        })
        .expect("helper attached its program");

    // bpftool prints TCX links as `N: type 11  prog ID` on older releases, `tcx` on newer.
    let link_of_ours = || {
        run(&["bpftool", "link", "show"]).lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["prog", program_id.as_str()])
        })
    };
    let program_loaded = || {
        Command::new("bpftool")
            .args(["prog", "show", "id", &program_id])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        link_of_ours(),
        "a TCX link holds the helper's program while it runs"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(i32::try_from(child.0.id()).unwrap(), libc::SIGKILL) };
    child.0.wait().unwrap();

    // The kernel releases TCX links when the last fd closes; freeing is asynchronous.
    let deadline = Instant::now() + Duration::from_secs(5);
    while link_of_ours() || program_loaded() {
        assert!(
            Instant::now() < deadline,
            "link or program {program_id} left behind after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let qdiscs_after = pair.exec_a(&["tc", "qdisc", "show", "dev", &pair.if_a]);
    assert_eq!(qdiscs_before, qdiscs_after, "no qdisc added or removed");
}
