//! `cargo xtask fuzz [--seconds N]`: fuzzes the recording reader with cargo-fuzz (installed
//! on first use), starting from the committed corpus in `fuzz/corpus/reader` (seeded with a
//! small synthetic recording and damaged copies of it when empty).

use std::{net::Ipv4Addr, path::Path, process::Command};

use anyhow::{Context as _, bail};
use tracer::{
    journey::observation::{Hook, Observation, Tuple},
    k8s::ClusterObjects,
    record::{format::Meta, writer::Recorder},
    topology::Topology,
};

fn seed(corpus: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(corpus)?;
    if std::fs::read_dir(corpus)?.next().is_some() {
        return Ok(());
    }
    let path = corpus.join("recording");
    let meta = Meta {
        tracer_version: "seed".into(),
        created_at: "2026-11-26T00:00:00Z".into(),
        hostname: "seed".into(),
        command: vec!["tracer".into(), "follow".into()],
        following: "nettest → svc/nginx-test".into(),
        names_from: "seed".into(),
        wall_offset_ns: 0,
        from_ips: vec![Ipv4Addr::new(10, 244, 102, 137)],
        to_ips: vec![Ipv4Addr::new(10, 109, 60, 89)],
        snap_len: 0,
    };
    let mut recorder = Recorder::create(
        &path,
        &meta,
        &ClusterObjects::default(),
        &Topology::default(),
        &[(2, "NO_SOCKET".into())],
    )?;
    let observations: Vec<Observation> = (0..4u16)
        .map(|i| Observation {
            ts_ns: 1_000 + u64::from(i) * 500,
            cpu: 0,
            hook: if i == 3 { Hook::Drop } else { Hook::Egress },
            netns_cookie: 1,
            ifindex: 2,
            tuple: Tuple {
                proto: 6,
                src: Ipv4Addr::new(10, 244, 102, 137),
                dst: Ipv4Addr::new(10, 109, 60, 89),
                sport: 40000,
                dport: 80,
            },
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
            outer: None,
            drop_reason: if i == 3 { 2 } else { 0 },
            skb_len: 74,
            mark: 0,
        })
        .collect();
    recorder.observations_blocking(observations);
    recorder.loss(1, 0);
    recorder.finish().map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(&path)?;
    std::fs::write(corpus.join("truncated"), &bytes[..bytes.len() * 2 / 3])?;
    std::fs::write(corpus.join("header-only"), &bytes[..16])?;
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(60), |s| s.parse::<u64>())
        .context("--seconds takes a number")?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus/reader");
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
        bail!("the fuzzer found a failure (see fuzz/artifacts/reader)");
    }
    Ok(())
}
