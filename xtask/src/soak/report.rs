//! The samples a soak takes and `docs/soak.md` written from them.

use std::{fmt::Write as _, thread, time::Duration};

use anyhow::Context as _;

use super::observe::{Header, Usage};
use super::{GROWTH_BOUND, Outcome, REQUESTS_PER_SECOND};

#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Since the traffic started.
    pub(super) at: Duration,
    pub(super) ui: Usage,
    pub(super) json: Option<Usage>,
    pub(super) header: Header,
    pub(super) requests_ok: u64,
    pub(super) requests_failed: u64,
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn clock(at: Duration) -> String {
    let s = at.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// CPU use between two samples, in % of one core.
pub(super) fn cpu_percent(ticks: u64, over: Duration) -> f64 {
    // SAFETY: trivial libc call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz / over.as_secs_f64().max(1e-9) * 100.0
}

pub(super) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / 1_048_576.0);
    format!(
        "{} cores ({model}), {memory:.0} GiB RAM, kernel {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    )
}

pub(super) fn report(minutes: u64, outcome: &Outcome) -> anyhow::Result<String> {
    let samples = &outcome.samples;
    let (first, last) = (
        samples.first().context("no samples")?,
        samples.last().context("no samples")?,
    );
    let span = last.at.saturating_sub(first.at);
    let journeys = last.header.journeys.unwrap_or(0);
    let mut doc = String::new();
    writeln!(doc, "# Soak: a live follow under steady traffic\n")?;
    writeln!(
        doc,
        "`sudo -E cargo xtask soak{}` runs `tracer follow nettest svc/nginx-test` in the terminal UI (a detached tmux session, 120×40) against a lab of its own (healthy scenario) while nettest makes {REQUESTS_PER_SECOND} HTTP requests/s to `svc/nginx-test` (a new connection each, through the Service DNAT, about 12 journeys each) and pings an endpoint Pod 10 times/s. Beside the UI, a second `tracer follow … --output json --record FILE` writes to /dev/null and records. Every {} s it reads both tracers' VmRSS, VmHWM and CPU time from /proc and the UI's screen (`tmux capture-pane`); at the end it quits the UI with `q`, stops the other with SIGINT, checks both exit with status 0, that none of the BPF programs and links they held remains, and replays the recording. Source: `xtask/src/soak.rs`.\n",
        if minutes == 60 {
            String::new()
        } else {
            format!(" --minutes {minutes}")
        },
        if minutes >= 10 { 30 } else { 10 }
    )?;
    writeln!(
        doc,
        "It fails when a tracer dies, the screen stops showing its header or its journey count stops growing, either tracer's RSS grows by more than {:.0} % from the baseline (the first sample after min(10 minutes, a third of the run) at which the UI's retention is full, i.e. it has let old journeys go) to the end, an exit status is not 0, or a BPF program or link of theirs remains.\n",
        GROWTH_BOUND * 100.0
    )?;
    if minutes < 60 {
        writeln!(
            doc,
            "This run was shorter than the default of 60 minutes (`cargo xtask soak`); its figures check the task more than the tracer.\n"
        )?;
    }
    writeln!(doc, "## Last run\n")?;
    writeln!(doc, "| | |\n|---|---|")?;
    writeln!(doc, "| machine | {} |", machine())?;
    writeln!(
        doc,
        "| duration | {} of traffic ({minutes} min asked) |",
        clock(span)
    )?;
    writeln!(
        doc,
        "| traffic | {} HTTP requests ({} failed), {:.1}/s; {} |",
        last.requests_ok + last.requests_failed,
        last.requests_failed,
        (last.requests_ok + last.requests_failed) as f64 / span.as_secs_f64().max(1e-9),
        if outcome.pings.is_empty() {
            "ping: no summary"
        } else {
            outcome.pings.as_str()
        }
    )?;
    writeln!(
        doc,
        "| journeys (UI) | {journeys}, {:.0}/s: {} delivered, {} dropped, {} incomplete; events lost in the kernel: {} |",
        journeys as f64 / span.as_secs_f64().max(1e-9),
        last.header.verdicts[0],
        last.header.verdicts[1],
        last.header.verdicts[2],
        last.header.lost.unwrap_or(0)
    )?;
    writeln!(
        doc,
        "| UI retention | newest {} journeys; full (old ones let go) from {} |",
        last.header.retention.unwrap_or(0),
        outcome.retention_full_at.map_or("never".to_owned(), clock)
    )?;
    let peak = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let ui_cpu = cpu_percent(last.ui.cpu_ticks - first.ui.cpu_ticks, span);
    let json_cpu = cpu_percent(
        last.json.map_or(0, |u| u.cpu_ticks) - first.json.map_or(0, |u| u.cpu_ticks),
        span,
    );
    writeln!(
        doc,
        "| UI tracer | peak RSS (VmHWM) {:.1} MiB; CPU {ui_cpu:.1} % of one core; {} programs, {} links held; exit status after q: {} |",
        mib(peak(|s| s.ui.hwm_kib)),
        outcome.ui_objects.0,
        outcome.ui_objects.1,
        outcome
            .ui_exit
            .map_or("did not exit".to_owned(), |c| c.to_string())
    )?;
    writeln!(
        doc,
        "| JSON + record tracer | peak RSS (VmHWM) {:.1} MiB; CPU {json_cpu:.1} % of one core; exit status after SIGINT: {}; `{}` |",
        mib(peak(|s| s.json.map_or(0, |u| u.hwm_kib))),
        outcome
            .json_exit
            .map_or("did not exit".to_owned(), |c| c.to_string()),
        outcome.json_summary.trim()
    )?;
    writeln!(
        doc,
        "| recording | {:.1} MiB; replay: `{}` |",
        outcome.recording_bytes as f64 / 1_048_576.0,
        outcome.replay.lines().last().unwrap_or("not replayed")
    )?;
    match outcome.baseline {
        Some(i) => {
            let base = &samples[i];
            let growth = |a: u64, b: u64| (b as f64 / a.max(1) as f64 - 1.0) * 100.0;
            writeln!(
                doc,
                "| RSS growth from {} to {} | UI {:.1} → {:.1} MiB ({:+.1} %); JSON follow {:.1} → {:.1} MiB ({:+.1} %); bound {:.0} % |",
                clock(base.at),
                clock(last.at),
                mib(base.ui.rss_kib),
                mib(last.ui.rss_kib),
                growth(base.ui.rss_kib, last.ui.rss_kib),
                mib(base.json.map_or(0, |u| u.rss_kib)),
                mib(last.json.map_or(0, |u| u.rss_kib)),
                growth(
                    base.json.map_or(0, |u| u.rss_kib),
                    last.json.map_or(0, |u| u.rss_kib)
                ),
                GROWTH_BOUND * 100.0
            )?;
        }
        None => writeln!(doc, "| RSS growth | not checked (no baseline sample) |")?,
    }
    let verdict = if outcome.failures.is_empty() {
        "**PASS**".to_owned()
    } else {
        format!(
            "**FAIL**: {}",
            outcome.failures.join("; ").replace('\n', " ")
        )
    };
    writeln!(doc, "| verdict | {verdict} |")?;
    for note in &outcome.notes {
        writeln!(doc, "\nNote: {note}.")?;
    }

    // Rows every 5 minutes for long runs, every 30 s for short ones, plus the baseline
    // and the last sample.
    let every = if minutes >= 20 { 300 } else { 30 };
    writeln!(
        doc,
        "\n### Samples (every {} of {} taken)\n",
        if every == 300 { "5 minutes" } else { "30 s" },
        samples.len()
    )?;
    writeln!(
        doc,
        "| time | journeys (UI) | journeys/s | UI RSS MiB | UI VmHWM MiB | UI CPU % | JSON follow RSS MiB | JSON follow CPU % |"
    )?;
    writeln!(doc, "|---|---|---|---|---|---|---|---|")?;
    let mut previous: Option<&Sample> = None;
    for (i, sample) in samples.iter().enumerate() {
        let shown = sample.at.as_secs() % every < 5
            || Some(i) == outcome.baseline
            || i + 1 == samples.len();
        if !shown {
            continue;
        }
        let (rate, ui_cpu, json_cpu) = match previous {
            Some(p) => {
                let over = sample.at.saturating_sub(p.at);
                (
                    format!(
                        "{:.0}",
                        (sample.header.journeys.unwrap_or(0) - p.header.journeys.unwrap_or(0))
                            as f64
                            / over.as_secs_f64().max(1e-9)
                    ),
                    format!(
                        "{:.1}",
                        cpu_percent(sample.ui.cpu_ticks - p.ui.cpu_ticks, over)
                    ),
                    format!(
                        "{:.1}",
                        cpu_percent(
                            sample.json.map_or(0, |u| u.cpu_ticks)
                                - p.json.map_or(0, |u| u.cpu_ticks),
                            over
                        )
                    ),
                )
            }
            None => ("–".into(), "–".into(), "–".into()),
        };
        writeln!(
            doc,
            "| {}{} | {} | {rate} | {:.1} | {:.1} | {ui_cpu} | {:.1} | {json_cpu} |",
            clock(sample.at),
            if Some(i) == outcome.baseline {
                " (baseline)"
            } else {
                ""
            },
            sample.header.journeys.unwrap_or(0),
            mib(sample.ui.rss_kib),
            mib(sample.ui.hwm_kib),
            mib(sample.json.map_or(0, |u| u.rss_kib)),
        )?;
        previous = Some(sample);
    }
    writeln!(
        doc,
        "\nRates and CPU are over the interval since the previous row shown; CPU is user + system time of the whole process (all threads) in % of one core."
    )?;
    Ok(doc)
}
