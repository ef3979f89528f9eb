//! `cargo xtask bench`: every figure of docs/benchmarks.md, measured in one run.
//!
//! 1. Data-path tax: iperf3 between nettest (cpu2) and nginx-test-…-abcde (cpu1), TCP
//!    throughput and UDP 64-byte packet rate, direct routing and VXLAN, with (a) nothing,
//!    (b) `tracer follow` on an unrelated pair, (c) `tracer follow` on this flow recording to
//!    a file (record-only, `--output summary`), (c′) the same with live JSON output, (d)
//!    `tcpdump` writing this flow to a file on both nodes. Repetitions are interleaved (a, b,
//!    c, c′, d, a, b, …) so drift on the machine hits every mode alike.
//! 2. Kernel cost per hop: BPF run-time statistics during a small-packet flood, and at a
//!    rate userspace keeps up with (so every followed hop is written to the ring).
//! 3. Userspace pipeline: decode + correlate + name, fed from a recording, per core; and the
//!    same with JSON output.
//! 4. Loss: the packet rate at which the first event is lost, and the loss at twice it, for
//!    a live JSON session and a record-only one.
//! 5. Recording size per hop; replay of a 1,000,000-hop recording: first journey, end, memory.
//! 6. Start-up (command to attached) and lab up time.

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Read as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tracer::{
    pipeline::Input,
    record::writer::{Provenance, Recorder},
    replay::Recording,
};

const CLIENT: &str = "nettest";
const SERVER: &str = "nginx-test-7d9c4b6f5-abcde";
const SERVER_IP: &str = "10.244.184.84";
const UNRELATED: [&str; 2] = ["webapp-5b8f6d7c9-h4t2m", "webapp-5b8f6d7c9-m9r3x"];

/// What runs beside the traffic in a data-path measurement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    FollowUnrelated,
    FollowRecord,
    FollowJson,
    FollowSampled,
    Tcpdump,
}

/// `follow --sample` in the sampled columns and rows: one packet in 64 traced hop by hop.
const SAMPLE: &str = "64";

impl Mode {
    const ALL: [Self; 6] = [
        Self::None,
        Self::FollowUnrelated,
        Self::FollowRecord,
        Self::FollowJson,
        Self::FollowSampled,
        Self::Tcpdump,
    ];

    fn key(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::FollowUnrelated => "follow-unrelated",
            Self::FollowRecord => "follow-record",
            Self::FollowJson => "follow-json",
            Self::FollowSampled => "follow-sampled",
            Self::Tcpdump => "tcpdump",
        }
    }
}

struct Bench {
    tracer: PathBuf,
    work: PathBuf,
    reps: usize,
    seconds: u32,
    report: String,
    /// What the recorder's writer costs per hop (encode, CRC, write), from the big
    /// recording's creation.
    encode_ns_per_hop: f64,
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const IPERF_PIDFILE: &str = "/tmp/tracer-bench-iperf3.pid";

fn stop_iperf_server() {
    if let Ok(pid) = std::fs::read_to_string(IPERF_PIDFILE) {
        let _ = sh("kill", &[pid.trim().trim_end_matches('\0')]);
        let _ = std::fs::remove_file(IPERF_PIDFILE);
    }
}

/// `kernel cost: tc_ingress: 42 ns per run over 123 runs` → (`tc_ingress`, 42).
fn kernel_cost(line: &str) -> Option<(String, f64)> {
    let rest = line.split("kernel cost: ").nth(1)?;
    let (program, figures) = rest.split_once(": ")?;
    let ns = figures.split_whitespace().next()?.parse().ok()?;
    Some((program.to_owned(), ns))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Max resident set size of a finished child, via wait4.
fn wait_rss(child: &mut Child) -> anyhow::Result<(std::process::ExitStatus, u64)> {
    let pid = i32::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    if rc < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    use std::os::unix::process::ExitStatusExt as _;
    Ok((
        std::process::ExitStatus::from_raw(status),
        u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    ))
}

/// A running `tracer follow`, started and attached.
struct Follow {
    child: Child,
    started: Duration,
    stderr_rx: std::sync::mpsc::Receiver<String>,
}

impl Bench {
    fn tracer(&self, args: &[&str]) -> anyhow::Result<String> {
        sh(self.tracer.to_str().context("path")?, args)
    }

    fn exec(&self, pod: &str, argv: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["lab", "exec", pod, "--"];
        args.extend_from_slice(argv);
        self.tracer(&args)
    }

    /// `tracer follow ARGS` against the bench's lab (its kubeconfig), with `--output json`
    /// unless ARGS choose an output.
    fn follow(&self, args: &[&str]) -> anyhow::Result<Follow> {
        self.start("follow", args)
    }

    /// `tracer agent ARGS` (a node's agent, recording), read as [`Self::follow`] reads.
    fn agent(&self, args: &[&str]) -> anyhow::Result<Follow> {
        self.start("agent", args)
    }

    fn start(&self, command: &str, args: &[&str]) -> anyhow::Result<Follow> {
        let start = Instant::now();
        let agent = command == "agent";
        let output: &[&str] = if args.contains(&"--output") || agent {
            &[]
        } else {
            &["--output", "json"]
        };
        // `--output summary` (an agent's only output) prints its closing line on stdout;
        // other outputs are discarded by the kernel, not read, so reading them costs the
        // bench nothing.
        let summary_on_stdout = args.contains(&"summary") || agent;
        let mut child = Command::new(&self.tracer)
            .arg(command)
            .args(args)
            .args(output)
            .arg("--kubeconfig")
            .arg(tracer_lab::kubeconfig_path())
            .stdout(if summary_on_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().context("stderr")?;
        let stdout = child.stdout.take();
        let forward = |input: Box<dyn std::io::Read + Send>,
                       tx: std::sync::mpsc::Sender<String>| {
            thread::spawn(move || {
                for line in BufReader::new(input).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        };
        forward(Box::new(stderr), tx.clone());
        if let Some(stdout) = stdout {
            forward(Box::new(stdout), tx);
        }
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("watching") => break,
                Ok(_) => {}
                Err(_) => bail!("tracer {command} did not start"),
            }
        }
        Ok(Follow {
            child,
            started: start.elapsed(),
            stderr_rx: rx,
        })
    }

    fn stop(follow: Follow) -> anyhow::Result<Vec<String>> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(i32::try_from(follow.child.id())?, libc::SIGINT) };
        let mut child = follow.child;
        child.wait()?;
        // Every line, up to the end of its output (the readers end at EOF).
        Ok(follow.stderr_rx.iter().collect())
    }

    /// iperf3 in the server Pod, in the background.
    fn start_iperf_server(&self) -> anyhow::Result<()> {
        // A run that failed left its server behind: iperf3 refuses to start beside it.
        stop_iperf_server();
        self.exec(SERVER, &["iperf3", "-s", "-D", "--pidfile", IPERF_PIDFILE])?;
        thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    fn iperf_tcp(&self) -> anyhow::Result<f64> {
        let secs = self.seconds.to_string();
        let json = self.exec(CLIENT, &["iperf3", "-c", SERVER_IP, "-t", &secs, "-J"])?;
        let v: serde_json::Value = serde_json::from_str(&json)?;
        Ok(v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN)
            / 1e9)
    }

    /// UDP 64-byte datagrams at `rate` packets/s (0: as fast as possible); received pps.
    fn iperf_udp(&self, rate: u64) -> anyhow::Result<f64> {
        let secs = self.seconds.to_string();
        let bandwidth = if rate == 0 {
            "0".to_owned()
        } else {
            (rate * 64 * 8).to_string()
        };
        let json = self.exec(
            CLIENT,
            &[
                "iperf3", "-c", SERVER_IP, "-u", "-l", "64", "-b", &bandwidth, "-t", &secs, "-J",
            ],
        )?;
        let v: serde_json::Value = serde_json::from_str(&json)?;
        if let Some(error) = v.get("error") {
            bail!("iperf3: {error}");
        }
        let sum = &v["end"]["sum"];
        let packets =
            sum["packets"].as_f64().unwrap_or(0.0) - sum["lost_packets"].as_f64().unwrap_or(0.0);
        Ok(packets / f64::from(self.seconds))
    }

    /// One run of `what` with `mode` set up around it.
    fn run_once(
        &self,
        mode: Mode,
        rep: usize,
        what: &dyn Fn() -> anyhow::Result<f64>,
    ) -> anyhow::Result<f64> {
        let recording = self.work.join(format!("tax-{}-{rep}.trace", mode.key()));
        let recording = recording.to_str().context("path")?.to_owned();
        let follow = match mode {
            Mode::FollowUnrelated => Some(self.follow(&[UNRELATED[0], UNRELATED[1]])?),
            Mode::FollowRecord => Some(self.follow(&[
                CLIENT, SERVER, "--record", &recording, "--output", "summary",
            ])?),
            Mode::FollowJson => Some(self.follow(&[CLIENT, SERVER, "--record", &recording])?),
            Mode::FollowSampled => Some(self.follow(&[
                CLIENT, SERVER, "--sample", SAMPLE, "--record", &recording, "--output", "summary",
            ])?),
            Mode::None | Mode::Tcpdump => None,
        };
        let dumps = if mode == Mode::Tcpdump {
            ["cpu1", "cpu2"]
                .iter()
                .map(|node| {
                    Command::new("ip")
                        .args([
                            "netns",
                            "exec",
                            &format!("tracer-lab-{node}"),
                            "tcpdump",
                            "-i",
                            "enp2s0",
                            "-s",
                            "96",
                            "-w",
                        ])
                        .arg(self.work.join(format!("tcpdump-{node}.pcap")))
                        .args(["host", SERVER_IP])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        if !dumps.is_empty() {
            thread::sleep(Duration::from_millis(500));
        }
        let value = what();
        for mut dump in dumps {
            let _ = dump.kill();
            let _ = dump.wait();
        }
        if let Some(follow) = follow {
            Self::stop(follow)?;
        }
        let _ = std::fs::remove_file(&recording);
        value
    }

    /// Medians per mode, from repetitions interleaved across the modes.
    fn measure_modes(&self, what: &dyn Fn() -> anyhow::Result<f64>) -> anyhow::Result<Vec<f64>> {
        let mut values = vec![Vec::new(); Mode::ALL.len()];
        for rep in 0..self.reps {
            for (i, mode) in Mode::ALL.iter().enumerate() {
                values[i].push(self.run_once(*mode, rep, what)?);
            }
        }
        Ok(values.into_iter().map(median).collect())
    }

    fn data_path_tax(&mut self) -> anyhow::Result<()> {
        writeln!(
            self.report,
            "\n## 1. Data-path tax (cross-node, nettest on cpu2 → {SERVER} on cpu1)\n"
        )?;
        writeln!(
            self.report,
            "Medians of {} runs of {} s each per mode, the modes interleaved run by run. Ratios are to (a) in the same scenario. (c) records and leaves correlation to `tracer replay` (`--output summary --record FILE`), as tcpdump leaves decoding to Wireshark; (c′) also correlates, names and prints every journey as JSON, live. (c_s) is (c) with `--sample 64`: about one packet in 64 traced hop by hop, every packet counted at each hook.\n",
            self.reps, self.seconds
        )?;
        writeln!(
            self.report,
            "| scenario | test | (a) none | (b) follow, unrelated pair | (c) follow this flow, recording | (c′) follow this flow, recording + live JSON | (c_s) follow this flow sampled, recording | (d) tcpdump this flow, both nodes |"
        )?;
        writeln!(self.report, "|---|---|---|---|---|---|---|---|")?;
        for scenario in ["healthy", "vxlan"] {
            self.tracer(&["lab", "up", "--scenario", scenario])?;
            self.start_iperf_server()?;
            for (test, unit) in [("TCP throughput", "Gbit/s"), ("UDP 64 B rate", "kpps")] {
                let results = if test.starts_with("TCP") {
                    self.measure_modes(&|| self.iperf_tcp())?
                } else {
                    self.measure_modes(&|| self.iperf_udp(0).map(|p| p / 1000.0))?
                };
                for (mode, value) in Mode::ALL.iter().zip(&results) {
                    eprintln!("bench: {scenario} {test} {}: {value:.2} {unit}", mode.key());
                }
                let base = results[0];
                let cells: Vec<String> = results
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if i == 0 {
                            format!("{v:.2} {unit}")
                        } else {
                            format!("{:.3} ({v:.2})", v / base)
                        }
                    })
                    .collect();
                writeln!(
                    self.report,
                    "| {scenario} | {test} | {} |",
                    cells.join(" | ")
                )?;
            }
            stop_iperf_server();
        }
        writeln!(
            self.report,
            "\nGoals: (b) ≥ 0.98 of (a); (c) ≥ 0.90 of (a) and better than (d)."
        )?;
        Ok(())
    }

    /// Section 2 for this build and another tracer binary (`--versus OLD`, e.g. the build
    /// before a change to the kernel programs), interleaved run by run on one lab, as
    /// medians and their ratio: what the change costs per hop.
    fn kernel_cost_versus(&mut self, baseline: &Path) -> anyhow::Result<()> {
        self.tracer(&["lab", "up", "--scenario", "vxlan"])?;
        self.start_iperf_server()?;
        let builds = [
            ("this build", self.tracer.clone()),
            ("baseline", baseline.to_owned()),
        ];
        let cases: [(&str, [&str; 2], u64, &str); 3] = [
            (
                "not followed (an unrelated pair is), flood",
                UNRELATED,
                0,
                "1",
            ),
            (
                "followed (this flow), every event delivered",
                [CLIENT, SERVER],
                20_000,
                "1",
            ),
            (
                "followed (this flow) with `--sample 64`, flood",
                [CLIENT, SERVER],
                0,
                SAMPLE,
            ),
        ];
        // (case, program) → ns per run, for each build.
        let mut ns: std::collections::BTreeMap<(usize, String), [Vec<f64>; 2]> =
            std::collections::BTreeMap::new();
        for _ in 0..self.reps {
            for (case, (_, pair, rate, sample)) in cases.iter().enumerate() {
                for (build, (_, binary)) in builds.iter().enumerate() {
                    let own = std::mem::replace(&mut self.tracer, binary.clone());
                    let measured = (|| {
                        let follow =
                            self.follow(&[pair[0], pair[1], "--kernel-stats", "--sample", sample])?;
                        self.iperf_udp(*rate)?;
                        Self::stop(follow)
                    })();
                    self.tracer = own;
                    for (program, figure) in measured?.iter().filter_map(|l| kernel_cost(l)) {
                        ns.entry((case, program)).or_default()[build].push(figure);
                    }
                }
            }
        }
        stop_iperf_server();
        writeln!(
            self.report,
            "\n## Kernel cost per hop, this build versus {} (VXLAN scenario, UDP 64 B)\n",
            baseline.display()
        )?;
        writeln!(
            self.report,
            "Medians of {} interleaved runs of {} s each; `tracer follow --kernel-stats`.\n",
            self.reps, self.seconds
        )?;
        writeln!(
            self.report,
            "| packets | program | this build (ns per run) | baseline (ns per run) | ratio |"
        )?;
        writeln!(self.report, "|---|---|---|---|---|")?;
        for ((case, program), [new, old]) in ns {
            let (new, old) = (median(new), median(old));
            let (old, ratio) = if old.is_nan() {
                ("(no such program)".to_owned(), "—".to_owned())
            } else {
                (format!("{old:.0}"), format!("{:.2}", new / old))
            };
            writeln!(
                self.report,
                "| {} | {program} | {new:.0} | {old} | {ratio} |",
                cases[case].0
            )?;
        }
        Ok(())
    }

    fn kernel_cost_and_loss(&mut self) -> anyhow::Result<()> {
        self.tracer(&["lab", "up", "--scenario", "vxlan"])?;
        self.start_iperf_server()?;

        writeln!(
            self.report,
            "\n## 2. Kernel cost per hop (VXLAN scenario, UDP 64 B flood)\n"
        )?;
        writeln!(
            self.report,
            "From the kernel's BPF run-time statistics (`tracer follow --kernel-stats`), averaged over every run of each program. The statistics themselves add two clock reads per run: a program that returns at once measured 34 ns here. In a flood the ring buffer is full most of the time and a followed hop's write fails fast; at 20,000 pps every event is written.\n"
        )?;
        writeln!(self.report, "| packets | program | runs | ns per run |")?;
        writeln!(self.report, "|---|---|---|---|")?;
        for (label, pair, rate, sample) in [
            (
                "not followed (an unrelated pair is), flood",
                UNRELATED,
                0,
                "1",
            ),
            ("followed (this flow), flood", [CLIENT, SERVER], 0, "1"),
            (
                "followed (this flow), every event delivered",
                [CLIENT, SERVER],
                20_000,
                "1",
            ),
            (
                "followed (this flow) with `--sample 64`: 1 in 64 traced, all counted, flood",
                [CLIENT, SERVER],
                0,
                SAMPLE,
            ),
        ] {
            let follow = self.follow(&[pair[0], pair[1], "--kernel-stats", "--sample", sample])?;
            let pps = self.iperf_udp(rate)?;
            let lines = Self::stop(follow)?;
            self.kernel_cost_rows(label, pps, &lines)?;
        }
        // A node's agent runs the same programs; it leaves other nodes' events to their
        // agents in userspace. Side by side with the row above, at the same rate.
        let recording = self.work.join("agent.trace");
        let recording = recording.to_str().context("path")?;
        let agent = self.agent(&[
            CLIENT,
            SERVER,
            "--node",
            "cpu2",
            "--record",
            recording,
            "--kernel-stats",
        ])?;
        let pps = self.iperf_udp(20_000)?;
        let lines = Self::stop(agent)?;
        let _ = std::fs::remove_file(recording);
        self.kernel_cost_rows(
            "followed by cpu2's agent (`tracer agent --node cpu2 --record`), every event delivered",
            pps,
            &lines,
        )?;
        writeln!(self.report, "\nGoal: ≤ 50 ns per TC hop.")?;
        self.loss()
    }

    /// One row per program of a run's `kernel cost:` lines.
    fn kernel_cost_rows(&mut self, label: &str, pps: f64, lines: &[String]) -> anyhow::Result<()> {
        for line in lines.iter().filter(|l| l.contains("kernel cost:")) {
            // "kernel cost: tc_ingress: 42 ns per run over 123 runs"
            let rest = line.split("kernel cost: ").nth(1).unwrap_or(line);
            let (program, figures) = rest.split_once(": ").unwrap_or((rest, ""));
            let ns = figures.split_whitespace().next().unwrap_or("?");
            let runs = figures.split_whitespace().nth(5).unwrap_or("?");
            writeln!(
                self.report,
                "| {label}, {pps:.0} pps | {program} | {runs} | {ns} |"
            )?;
        }
        Ok(())
    }

    /// Events lost at fixed offered rates, live and record-only.
    fn loss(&mut self) -> anyhow::Result<()> {
        writeln!(
            self.report,
            "\n## 4. Loss (VXLAN scenario, UDP 64 B at fixed rates, default settings)\n"
        )?;
        writeln!(
            self.report,
            "Events lost are those the kernel counted when the ring buffer was full; each packet is 6–8 events here (one per hook it crosses; UDP has no reply).\n"
        )?;
        writeln!(
            self.report,
            "| offered rate (pps) | session | received (pps) | events lost (ring buffer full) |"
        )?;
        writeln!(self.report, "|---|---|---|---|")?;
        let mut first_loss = [None, None];
        let sessions: [(&str, &[&str]); 2] = [
            ("live JSON", &[]),
            ("record-only", &["--output", "summary", "--record"]),
        ];
        for rate in [10_000u64, 25_000, 50_000, 100_000, 200_000, 400_000] {
            for (i, (session, extra)) in sessions.iter().enumerate() {
                let recording = self.work.join("loss.trace");
                let mut args = vec![CLIENT, SERVER];
                args.extend_from_slice(extra);
                if !extra.is_empty() {
                    args.push(recording.to_str().context("path")?);
                }
                let follow = self.follow(&args)?;
                let received = self.iperf_udp(rate)?;
                let lines = Self::stop(follow)?;
                let _ = std::fs::remove_file(&recording);
                let lost = lines
                    .iter()
                    .find_map(|l| l.split("events lost in the kernel: ").nth(1))
                    // "12; hops only: …": the number ends at the first non-digit.
                    .map(|t| {
                        t.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|n| n.parse::<u64>().ok())
                    .context("no loss figure in the summary")?;
                writeln!(
                    self.report,
                    "| {rate} | {session} | {received:.0} | {lost} |"
                )?;
                eprintln!("bench: loss at {rate} pps, {session}: {lost}");
                if lost > 0 && first_loss[i].is_none() {
                    first_loss[i] = Some(rate);
                }
            }
        }
        writeln!(self.report)?;
        for ((session, _), first) in sessions.iter().zip(first_loss) {
            match first {
                Some(rate) => writeln!(
                    self.report,
                    "- {session}: first loss at {rate} offered packets/s; the table shows the loss at twice that rate where measured."
                )?,
                None => writeln!(
                    self.report,
                    "- {session}: no event lost at any rate measured."
                )?,
            }
        }
        stop_iperf_server();
        Ok(())
    }

    /// Records a short real session, then replicates its observations into a large
    /// recording with the same context (shifted in time, new IP IDs per copy).
    fn big_recording(&mut self, hops: usize) -> anyhow::Result<(PathBuf, usize)> {
        self.tracer(&["lab", "up", "--scenario", "healthy"])?;
        let seed = self.work.join("seed.trace");
        let seed_arg = seed.to_str().context("path")?.to_owned();
        let follow = self.follow(&["nettest", "svc/nginx-test", "--record", &seed_arg])?;
        for _ in 0..10 {
            self.exec(
                CLIENT,
                &["curl", "-s", "-o", "/dev/null", "http://10.109.60.89/"],
            )?;
        }
        thread::sleep(Duration::from_millis(500));
        Self::stop(follow)?;

        let big = self.work.join("big.trace");
        let start = Instant::now();
        let written = replicate(&seed, &big, hops)?;
        self.encode_ns_per_hop = start.elapsed().as_secs_f64() * 1e9 / written as f64;
        Ok((big, written))
    }

    fn pipeline_and_replay(&mut self) -> anyhow::Result<()> {
        let (big, hops) = self.big_recording(1_000_000)?;
        let size = std::fs::metadata(&big)?.len();

        // Time to the first journey: read one byte, then stop.
        let start = Instant::now();
        let mut child = Command::new(&self.tracer)
            .args(["replay", "--output", "json"])
            .arg(&big)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut first = [0u8; 1];
        child
            .stdout
            .take()
            .context("stdout")?
            .read_exact(&mut first)?;
        let first_at = start.elapsed();
        let _ = child.kill();
        let _ = child.wait();

        // Interleaved run by run, so a busy moment of the machine falls on every variant.
        let variants: [(&str, &[&str]); 3] = [
            (
                "decode, correlate, name (`--output summary`)",
                &["--output", "summary"],
            ),
            (
                "decode, correlate, name, group into flows (`--output summary --flows`)",
                &["--output", "summary", "--flows"],
            ),
            (
                "decode, correlate, name, print JSON (`--output json`)",
                &["--output", "json"],
            ),
        ];
        let mut times = vec![Vec::new(); variants.len()];
        let mut last = vec![(0, 0); variants.len()];
        for _ in 0..self.reps {
            for (i, (_, args)) in variants.iter().enumerate() {
                let (time, journeys, rss) = self.replay_whole(&big, args)?;
                times[i].push(time);
                last[i] = (journeys, rss);
            }
        }
        let runs: Vec<(&str, f64, u64, u64)> = variants
            .iter()
            .zip(times)
            .zip(&last)
            .map(|(((stages, _), times), &(journeys, rss))| (*stages, median(times), journeys, rss))
            .collect();
        writeln!(self.report, "\n## 3. Userspace pipeline\n")?;
        writeln!(
            self.report,
            "`tracer replay big.trace` over {hops} recorded hops ({} journeys), median of {} runs, one core, the variants interleaved run by run. The record stage was measured writing that file through the same recorder a live session uses (encode, CRC, write): {:.0} ns per hop.\n",
            runs[0].2, self.reps, self.encode_ns_per_hop
        )?;
        writeln!(self.report, "| stages | wall | hops/s |")?;
        writeln!(self.report, "|---|---|---|")?;
        for (stages, time, _, _) in &runs {
            writeln!(
                self.report,
                "| {stages} | {time:.2} s | {:.0} |",
                hops as f64 / time
            )?;
        }
        let all = runs[0].1 + self.encode_ns_per_hop * hops as f64 / 1e9;
        writeln!(
            self.report,
            "| decode, correlate, name, record (the sum of the first row and the record stage) | {all:.2} s | {:.0} |",
            hops as f64 / all
        )?;
        writeln!(self.report, "\nGoal: ≥ 1,000,000 hops/s per core.")?;
        let (total, rss) = (runs[2].1, runs[2].3);
        writeln!(self.report, "\n## 5. Recording and replay\n")?;
        writeln!(self.report, "| figure | value |")?;
        writeln!(self.report, "|---|---|")?;
        writeln!(
            self.report,
            "| recording size | {:.1} bytes per hop ({size} bytes for {hops} hops, including the session's context) |",
            size as f64 / hops as f64
        )?;
        writeln!(
            self.report,
            "| replay: first journey out | {:.0} ms |",
            first_at.as_secs_f64() * 1000.0
        )?;
        writeln!(
            self.report,
            "| replay: end of a {hops}-hop recording, JSON out | {total:.2} s |"
        )?;
        writeln!(
            self.report,
            "| replay: peak memory (max RSS) | {:.1} MiB |",
            rss as f64 / 1_048_576.0
        )?;
        Ok(())
    }

    /// Replays the whole file with `args` (its output discarded by the kernel, not by a slow
    /// reader): wall seconds, journeys (from the summary line) and peak memory.
    fn replay_whole(&self, big: &Path, args: &[&str]) -> anyhow::Result<(f64, u64, u64)> {
        // `summary` prints its line on stdout; the other outputs print it on stderr.
        let summary_on_stdout = args.contains(&"summary");
        let (stdout, stderr) = if summary_on_stdout {
            (Stdio::piped(), Stdio::null())
        } else {
            (Stdio::null(), Stdio::piped())
        };
        let start = Instant::now();
        let mut child = Command::new(&self.tracer)
            .arg("replay")
            .args(args)
            .arg(big)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        let mut summary = String::new();
        match (child.stdout.as_mut(), child.stderr.as_mut()) {
            (Some(out), _) => out.read_to_string(&mut summary)?,
            (None, Some(err)) => err.read_to_string(&mut summary)?,
            (None, None) => bail!("no output to read"),
        };
        let (_, rss) = wait_rss(&mut child)?;
        let wall = start.elapsed().as_secs_f64();
        // `N journeys: …`, after the flow table when there is one.
        let journeys = summary
            .lines()
            .find(|line| line.contains(" journeys: "))
            .and_then(|line| line.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok((wall, journeys, rss))
    }

    fn startup(&mut self) -> anyhow::Result<()> {
        let mut starts = Vec::new();
        for _ in 0..self.reps {
            let follow = self.follow(&[CLIENT, "svc/nginx-test"])?;
            starts.push(follow.started.as_secs_f64());
            Self::stop(follow)?;
        }
        let mut ups = Vec::new();
        for _ in 0..self.reps {
            self.tracer(&["lab", "down"])?;
            let start = Instant::now();
            self.tracer(&["lab", "up", "--scenario", "healthy"])?;
            ups.push(start.elapsed().as_secs_f64());
        }
        writeln!(self.report, "\n## 6. Start-up\n")?;
        writeln!(self.report, "| figure | median |")?;
        writeln!(self.report, "|---|---|")?;
        writeln!(
            self.report,
            "| `tracer follow nettest svc/nginx-test`: command to attached (resolve, discover 12 namespaces, load, attach 14 interfaces) | {:.2} s |",
            median(starts)
        )?;
        writeln!(
            self.report,
            "| `tracer lab up` from nothing (12 namespaces, API, HTTP servers) | {:.2} s (goal < 5 s) |",
            median(ups)
        )?;
        Ok(())
    }
}

/// Writes `out`: the observations of the recording `seed`, copied again and again (shifted
/// in time, new IP IDs per copy) until there are at least `hops`, with the seed's context.
pub fn replicate(seed: &Path, out: &Path, hops: usize) -> anyhow::Result<usize> {
    let mut recording = Recording::open(seed)?;
    let mut context = Vec::new();
    let mut observations = Vec::new();
    while let Some(input) = recording.next_input() {
        match input {
            Input::Observations { batch, .. } => observations.extend(batch),
            Input::Counters(_) | Input::Notice { .. } => {}
            other => context.push(other),
        }
    }
    if observations.is_empty() {
        bail!("the seed recording has no observations");
    }
    let span =
        observations.iter().map(|o| o.ts_ns).max().unwrap_or(0) - observations[0].ts_ns + 1_000_000;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("create {}", out.display()))?;
    let mut recorder = Recorder::offline(file, out, Provenance::here())?;
    for input in &context {
        recorder.record(input);
    }
    let mut written = 0;
    let mut copy = 0u64;
    while written < hops {
        let batch: Vec<_> = observations
            .iter()
            .map(|o| {
                let mut o = *o;
                o.ts_ns += copy * span;
                o.ip_id = o
                    .ip_id
                    .wrapping_add(u16::try_from(copy % 65_521).unwrap_or(0));
                o
            })
            .collect();
        written += batch.len();
        let now_ns = batch.iter().map(|o| o.ts_ns).max().unwrap_or(0);
        recorder.record(&Input::Observations { now_ns, batch });
        copy += 1;
    }
    let report = recorder.finish();
    if let Some(error) = report.error {
        bail!("writing {}: {error}", out.display());
    }
    Ok(written)
}

const SECTIONS: &str =
    "--section needs one of: tax (1), kernel (2 and 4), pipeline (3 and 5), startup";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let (root, tracer) = crate::root_and_release_tracer("bench")?;
    let work = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut bench = Bench {
        tracer,
        work: work.clone(),
        reps: if quick { 1 } else { 5 },
        seconds: if quick { 2 } else { 3 },
        report: String::new(),
        encode_ns_per_hop: 0.0,
    };
    let machine = format!(
        "{} cores, kernel {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let versus = args
        .iter()
        .position(|a| a == "--versus")
        .map(|i| {
            args.get(i + 1)
                .map(PathBuf::from)
                .context("--versus needs a tracer binary")
        })
        .transpose()?;
    if let Some(baseline) = versus {
        let result = bench.kernel_cost_versus(&baseline);
        let _ = bench.tracer(&["lab", "down"]);
        let _ = std::fs::remove_dir_all(&work);
        result?;
        // A comparison for a change, not the product's figures: printed, not written over
        // docs/benchmarks.md.
        print!("{}", bench.report);
        return Ok(());
    }
    let section = args
        .iter()
        .position(|a| a == "--section")
        .map(|i| args.get(i + 1).cloned().context(SECTIONS))
        .transpose()?;
    let result = (|| -> anyhow::Result<()> {
        let all = section.is_none();
        let want = |name: &str| all || section.as_deref() == Some(name);
        if !all
            && !["tax", "kernel", "pipeline", "startup"]
                .iter()
                .any(|n| want(n))
        {
            bail!("{SECTIONS}");
        }
        if want("tax") {
            bench.data_path_tax()?;
        }
        if want("kernel") {
            bench.kernel_cost_and_loss()?;
        }
        if want("pipeline") {
            bench.pipeline_and_replay()?;
        }
        if want("startup") {
            bench.startup()?;
        }
        Ok(())
    })();
    let _ = bench.tracer(&["lab", "down"]);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    if section.is_some() {
        // One section is a check while working, not the product's figures: printed, not
        // written over docs/benchmarks.md.
        print!("{}", bench.report);
        return Ok(());
    }
    let header = format!(
        "# Benchmarks\n\nMeasured in one run with `sudo -E cargo xtask bench{}` on {machine}, against the built-in lab. Each section says what was measured; ratios compare runs of that same invocation.\n",
        if quick { " --quick" } else { "" }
    );
    let out = root.join("docs/benchmarks.md");
    std::fs::write(&out, header + &bench.report)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
