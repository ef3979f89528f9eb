//! `cargo xtask soak [--minutes N]`: a live `tracer follow` in the real terminal UI, under
//! steady traffic, for N minutes (default 60); writes `docs/soak.md`.
//!
//! - A lab of its own (`TRACER_LAB_PREFIX=tsk<pid>-`, healthy scenario), so a lab someone
//!   else has up is never touched, and the follow sees only this lab's namespaces.
//! - The UI: `tracer follow nettest svc/nginx-test` in a detached tmux session on a tmux
//!   server of its own (`tmux -S`), 120×40, under a shell that writes the tracer's exit
//!   status to a file after `q`. The UI keeps the newest journeys (its retention, read
//!   from the header); that is what bounds its memory, so the growth check starts once
//!   retention is full.
//! - Beside it, `tracer follow … --output json --record FILE` to /dev/null: the path
//!   without retention, and a long recording, which is replayed at the end.
//! - Traffic: one thread inside nettest's namespace makes HTTP requests to the Service
//!   (`Connection: close`, so each is a new connection through the DNAT) at a fixed rate,
//!   and one `ping` to an endpoint Pod. Everything stays inside the lab's namespaces.
//! - Every sample (30 s; 10 s for runs under 10 minutes): VmRSS and VmHWM
//!   (/proc/PID/status), CPU time (/proc/PID/stat), liveness, and the screen
//!   (`tmux capture-pane`): the header must be there and its journey count must grow.
//! - At the end: `q`, exit status 0, and none of the BPF programs and links the tracers
//!   held (read from /proc/PID/fdinfo while they ran) may still exist.
//!
//! Everything it starts is stopped and removed on every path, Ctrl-C included (guards
//! dropped in reverse order: traffic, the JSON follow, the tmux server, the lab, the
//! temporary directory).

mod observe;
mod processes;
mod report;

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use observe::{bpf_objects, parse_header, remaining, usage};
use processes::{JsonFollow, Lab, Tmux, Traffic, WorkDir};
use report::{Sample, clock, mib, report};

/// The Service the traffic goes to (`svc/nginx-test`), and one of its endpoints for ping.
const SERVICE: &str = "10.109.60.89:80";
const ENDPOINT: &str = "10.244.184.84";
/// HTTP requests per second; with `Connection: close` each is about 12 journeys (SYN,
/// SYN-ACK, ACKs, data, FINs, both directions), plus 20 journeys/s of ping.
const REQUESTS_PER_SECOND: u32 = 30;
/// Allowed RSS growth from the baseline sample to the last one.
const GROWTH_BOUND: f64 = 0.20;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Sleeps, but gives up when Ctrl-C (or SIGTERM/SIGHUP) arrived.
fn pause(duration: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
    }
    Ok(())
}

fn sh(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Outcome {
    samples: Vec<Sample>,
    failures: Vec<String>,
    notes: Vec<String>,
    /// Index of the sample the growth check starts from.
    baseline: Option<usize>,
    retention_full_at: Option<Duration>,
    ui_exit: Option<i32>,
    json_exit: Option<i32>,
    json_summary: String,
    recording_bytes: u64,
    replay: String,
    ui_objects: (usize, usize),
    pings: String,
}

fn soak(tracer: &Path, duration: Duration) -> anyhow::Result<Outcome> {
    let interval = if duration >= Duration::from_secs(600) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(10)
    };
    let warmup = (duration / 3).min(Duration::from_secs(600));

    let work = WorkDir(std::env::temp_dir().join(format!("tracer-soak-{}", std::process::id())));
    std::fs::create_dir_all(&work.0)?;
    eprintln!("soak: lab up (healthy)");
    let lab = Lab::up(tracer)?;
    let kubeconfig = lab.kubeconfig();
    let tracer_arg = tracer.to_str().context("path")?;
    let kubeconfig_arg = kubeconfig.to_str().context("path")?;
    let tmux = Tmux::start(
        &work.0,
        &[
            tracer_arg,
            "follow",
            "nettest",
            "svc/nginx-test",
            "--kubeconfig",
            kubeconfig_arg,
            "--netns-prefix",
            &lab.prefix,
        ],
    )?;
    let ui_pid = tmux.tracer_pid.context("the UI's pid")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !parse_header(&tmux.screen()).live {
        if Instant::now() > deadline || tmux.exit_status().is_some() {
            bail!("the UI never showed LIVE:\n{}", tmux.screen());
        }
        pause(Duration::from_millis(200))?;
    }
    // Attached once the header is up; give it a moment to finish attaching everything.
    pause(Duration::from_secs(2))?;
    let (ui_programs, ui_links) = bpf_objects(ui_pid);
    eprintln!(
        "soak: UI live (pid {ui_pid}, {} programs, {} links)",
        ui_programs.len(),
        ui_links.len()
    );

    let recording = work.0.join("soak.trace");
    let mut json = JsonFollow::start(&lab, tracer, &recording)?;
    pause(Duration::from_secs(1))?;
    let (json_programs, json_links) = bpf_objects(json.pid());

    let mut traffic = Traffic::start(&lab.netns("pod-nettest"))?;
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures = Vec::new();
    let mut next = started;
    loop {
        let at = started.elapsed();
        let screen = tmux.screen();
        let header = parse_header(&screen);
        let (requests_ok, requests_failed) = traffic.requests();
        let Some(ui) = usage(ui_pid) else {
            failures.push(format!(
                "the UI's tracer died at {}; last screen:\n{screen}",
                clock(at)
            ));
            break;
        };
        let json_usage = usage(json.pid());
        if json_usage.is_none() {
            failures.push(format!("the JSON follow died at {}", clock(at)));
            break;
        }
        let sample = Sample {
            at,
            ui,
            json: json_usage,
            header,
            requests_ok,
            requests_failed,
        };
        eprintln!(
            "soak: {} journeys {} RSS {:.1} MiB (JSON follow {:.1} MiB) requests {requests_ok} ok {requests_failed} failed",
            clock(at),
            header.journeys.map_or("?".into(), |n| n.to_string()),
            mib(ui.rss_kib),
            mib(json_usage.map_or(0, |u| u.rss_kib)),
        );
        let previous = samples.last().and_then(|s| s.header.journeys);
        samples.push(sample);
        if !header.live || header.journeys.is_none() {
            failures.push(format!(
                "the screen stopped rendering its header at {}:\n{screen}",
                clock(at)
            ));
            break;
        }
        if samples.len() > 2 && header.journeys <= previous {
            failures.push(format!(
                "the journey count stopped growing at {} ({} → {}; requests {requests_ok} ok, {requests_failed} failed):\n{screen}",
                clock(at),
                previous.unwrap_or(0),
                header.journeys.unwrap_or(0)
            ));
            break;
        }
        if at >= duration {
            break;
        }
        next += interval;
        pause(next.saturating_duration_since(Instant::now()))?;
    }
    let pings = traffic.stop().unwrap_or_default();
    drop(traffic);

    // Quit the UI as a user would.
    let ui_exit = if failures.is_empty() {
        tmux.quit(Duration::from_secs(15))?
    } else {
        None
    };
    let final_screen = tmux.screen();
    if failures.is_empty() && ui_exit != Some(0) {
        failures.push(format!(
            "the UI did not exit with status 0 after q: {ui_exit:?}\n{final_screen}"
        ));
    }
    let (json_exit, json_stderr) = json.stop()?;
    if json_exit != Some(0) {
        failures.push(format!(
            "the JSON follow did not exit with status 0 on SIGINT: {json_exit:?}\n{}",
            json_stderr.join("\n")
        ));
    }
    drop(json);
    drop(tmux);
    let left = remaining(
        &ui_programs.union(&json_programs).copied().collect(),
        &ui_links.union(&json_links).copied().collect(),
    );
    if !left.is_empty() {
        failures.push(format!(
            "still in the kernel after both tracers ended: {}",
            left.join(", ")
        ));
    }
    if ui_links.is_empty() {
        failures.push("the UI's tracer held no BPF links (nothing attached?)".into());
    }

    let recording_bytes = std::fs::metadata(&recording).map_or(0, |m| m.len());
    let replay = if json_exit == Some(0) {
        let out = Command::new(tracer)
            .args(["replay", "--output", "json"])
            .arg(&recording)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            failures.push(format!("replaying the recording failed: {text}"));
        }
        text
    } else {
        String::new()
    };

    let retention_full_at = samples.iter().find(|s| s.header.let_go > 0).map(|s| s.at);
    let baseline = samples
        .iter()
        .position(|s| s.at >= warmup && s.header.let_go > 0)
        .filter(|&i| i + 1 < samples.len());
    let mut notes = Vec::new();
    if let Some(lost) = samples
        .last()
        .and_then(|s| s.header.lost)
        .filter(|&l| l > 0)
    {
        notes.push(format!("the UI counted {lost} events lost in the kernel"));
    }
    if samples.len() > 1 {
        match baseline {
            Some(i) => {
                let (base, last) = (&samples[i], &samples[samples.len() - 1]);
                for (who, from, to) in [
                    ("the UI", base.ui.rss_kib, last.ui.rss_kib),
                    (
                        "the JSON follow",
                        base.json.map_or(0, |u| u.rss_kib),
                        last.json.map_or(0, |u| u.rss_kib),
                    ),
                ] {
                    let growth = to as f64 / from.max(1) as f64 - 1.0;
                    if growth > GROWTH_BOUND {
                        failures.push(format!(
                            "{who}'s RSS grew {:.1} % from {} to {} ({:.1} → {:.1} MiB), bound {:.0} %",
                            growth * 100.0,
                            clock(base.at),
                            clock(last.at),
                            mib(from),
                            mib(to),
                            GROWTH_BOUND * 100.0
                        ));
                    }
                }
            }
            None => failures.push(format!(
                "the UI's retention was not full after {} with a sample after it, so memory growth could not be checked: run longer",
                clock(warmup)
            )),
        }
    }
    Ok(Outcome {
        samples,
        failures,
        notes,
        baseline,
        retention_full_at,
        ui_exit,
        json_exit,
        json_summary: json_stderr
            .iter()
            .find(|l| l.contains(" journeys: "))
            .cloned()
            .unwrap_or_default(),
        recording_bytes,
        replay,
        ui_objects: (ui_programs.len(), ui_links.len()),
        pings,
    })
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let minutes = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(60), |s| s.parse::<u64>())
        .context("--minutes takes a whole number")?;
    if minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    let (root, tracer) = crate::root_and_release_tracer("soak")?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    let outcome = soak(&tracer, Duration::from_secs(minutes * 60))?;
    if outcome.samples.is_empty() {
        bail!("soak failed:\n- {}", outcome.failures.join("\n- "));
    }
    let doc = report(minutes, &outcome)?;
    let out = root.join("docs/soak.md");
    std::fs::write(&out, doc)?;
    eprintln!("wrote {}", out.display());
    for note in &outcome.notes {
        eprintln!("soak: note: {note}");
    }
    if !outcome.failures.is_empty() {
        bail!("soak failed:\n- {}", outcome.failures.join("\n- "));
    }
    eprintln!("soak: PASS");
    Ok(())
}
