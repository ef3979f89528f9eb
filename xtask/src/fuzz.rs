//! `cargo xtask fuzz [--seconds N]`: fuzzes the recording reader with cargo-fuzz (installed
//! on first use), starting from the committed corpus in `fuzz/corpus/reader` (seeded with a
//! small synthetic recording in the current format — every hook, the route lookup and the
//! NAT rewrite with their extra fields — and damaged copies of it).

use std::{net::Ipv4Addr, path::Path, process::Command, sync::Arc};

use anyhow::{Context as _, bail};
use tracer::{
    drop_reason::DropReasons,
    journey::observation::{Hook, IpProto, NatManip, NatRewrite, Observation, RouteChoice, Tuple},
    pipeline::{Input, Session},
    record::{
        format::FORMAT_VERSION,
        writer::{Provenance, Recorder},
    },
    topology::Topology,
};

/// Seeds the corpus with a small recording in the current format and damaged copies of it
/// (each written once per format version; the corpus keeps what the fuzzer found since,
/// and the seeds of earlier versions, which the reader still reads).
fn seed(corpus: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(corpus)?;
    let path = corpus.join(format!("recording-v{FORMAT_VERSION}-hooks"));
    if path.exists() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    let mut recorder = Recorder::offline(file, &path, Provenance::here())?;
    recorder.record(&Input::Session(Arc::new(Session {
        following: "nettest → svc/nginx-test".into(),
        names_from: "seed".into(),
        from_ips: vec![Ipv4Addr::new(10, 244, 102, 137)],
        to_ips: vec![Ipv4Addr::new(10, 109, 60, 89)],
        ..Session::default()
    })));
    recorder.record(&Input::DropReasons(Arc::new(DropReasons::from_recorded(
        vec![(2, "NO_SOCKET".into())],
    ))));
    recorder.record(&Input::Topology {
        since_ns: 0,
        topology: Arc::new(Topology::default()),
    });
    let hooks = [
        Hook::Egress,
        Hook::Ingress,
        Hook::Nat,
        Hook::Route,
        Hook::Egress,
        Hook::Drop,
    ];
    let service = Tuple {
        proto: IpProto::Tcp,
        src: Ipv4Addr::new(10, 244, 102, 137),
        dst: Ipv4Addr::new(10, 109, 60, 89),
        sport: 40000,
        dport: 80,
    };
    let observations: Vec<Observation> = (0..6u16)
        .map(|i| Observation {
            ts_ns: 1_000 + u64::from(i) * 500,
            cpu: 0,
            hook: hooks[usize::from(i)],
            netns_cookie: 1,
            ifindex: 2,
            tuple: service,
            ip_id: i,
            ip_len: 60,
            ttl: 64,
            dont_fragment: true,
            later_fragment: false,
            tcp_seq: 1,
            tcp_ack: 0,
            tcp_flags: 2,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            icmp_seq: 0,
            payload_hash: 0,
            outer: None,
            drop_reason: if i == 5 { 2 } else { 0 },
            reason_unknown: false,
            shared_data: false,
            skb_len: 74,
            mark: 0,
            route: (i == 3).then_some(RouteChoice {
                table: 254,
                gateway: Some(Ipv4Addr::new(172, 30, 1, 43)),
                oif: 2,
                err: 0,
            }),
            nat: (i == 2).then_some(NatRewrite {
                manip: NatManip::Destination,
                reply_direction: false,
                original: service,
                reply: Tuple {
                    src: Ipv4Addr::new(10, 244, 184, 84),
                    ..service.reversed()
                },
            }),
        })
        .collect();
    // A UDP datagram (IP ID 0, as unconnected UDP with Don't Fragment sends it) at two
    // hooks: the payload hash of format 4.
    let mut observations = observations;
    for (i, hook) in [Hook::Egress, Hook::Drop].into_iter().enumerate() {
        let mut datagram = observations[0];
        datagram.ts_ns += 4_000 + i as u64 * 500;
        datagram.hook = hook;
        datagram.tuple.proto = IpProto::Udp;
        (datagram.tuple.dport, datagram.ip_id, datagram.tcp_seq) = (53, 0, 0);
        (datagram.tcp_flags, datagram.route, datagram.nat) = (0, None, None);
        datagram.payload_hash = 0x4ec8_fd59;
        observations.push(datagram);
    }
    recorder.record(&Input::Observations {
        now_ns: 3_000,
        batch: observations,
    });
    if let Some(error) = recorder.finish().error {
        bail!("writing {}: {error}", path.display());
    }
    let bytes = std::fs::read(&path)?;
    std::fs::write(
        corpus.join(format!("truncated-v{FORMAT_VERSION}-hooks")),
        &bytes[..bytes.len() * 2 / 3],
    )?;
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(
        corpus.join(format!("flipped-v{FORMAT_VERSION}-hooks")),
        flipped,
    )?;
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus/reader");
    if args.iter().any(|a| a == "--seed-only") {
        // After a format change: the new version's seeds, to commit, without a fuzz run.
        return seed(&corpus);
    }
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(60), |s| s.parse::<u64>())
        .context("--seconds takes a number")?;
    seed(&corpus)?;
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("xtask: installing cargo-fuzz (once)");
        let status = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()?;
        if !status.success() {
            bail!("cargo install cargo-fuzz failed");
        }
    }
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            "reader",
            "--",
            &format!("-max_total_time={seconds}"),
        ])
        .current_dir(&root)
        .env("AYA_BUILD_SKIP", "1")
        .status()?;
    if !status.success() {
        bail!(
            "the fuzz run failed: the target did not build (see above), or the fuzzer found \
             a failure (see fuzz/artifacts/reader)"
        );
    }
    Ok(())
}
