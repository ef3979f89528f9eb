//! The terminal UI on canned journeys, for looking at it by hand (no root, no cluster):
//!
//! ```text
//! cargo run -p tracer --example tui_demo                    # replay the fixture
//! cargo run -p tracer --example tui_demo -- --live          # a live-looking stream
//! cargo run -p tracer --example tui_demo -- --live --rate 5000 FILE.jsonl
//! ```
//!
//! FILE holds journeys one per line, as `tracer follow --output json` prints them; the
//! default is `tests/fixtures/journeys.jsonl`. `--live` repeats them forever with fresh
//! ids and times at `--rate` journeys per second, reports growing loss counters, and
//! after ten seconds a notice, as a recorder whose disk filled up would.

use std::{
    path::PathBuf,
    sync::mpsc::{self, SyncSender},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use tracer::{
    clock::rfc3339,
    journey::model::Journey,
    pipeline::Counters,
    tui::{self, Header, Mode, UiEvent},
};

struct Args {
    live: bool,
    rate: u64,
    file: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        live: false,
        rate: 200,
        file: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/journeys.jsonl"
        )),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--live" => args.live = true,
            "--rate" => {
                args.rate = it
                    .next()
                    .context("--rate needs a number")?
                    .parse()
                    .context("--rate")?;
            }
            s if s.starts_with('-') => bail!("unknown option {s}"),
            file => args.file = PathBuf::from(file),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("read {}", args.file.display()))?;
    let journeys = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str::<Journey>)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", args.file.display()))?;
    if journeys.is_empty() {
        bail!("{} holds no journeys", args.file.display());
    }
    let (tx, rx) = mpsc::sync_channel(4096);
    let name = args.file.display().to_string();
    let header = Header {
        following:
            "nettest (default, 10.244.102.137, cpu2) → svc/nginx-test (10.109.60.89, 3 endpoints)"
                .into(),
        mode: if args.live { Mode::Live } else { Mode::Replay },
        recording: args.live.then(|| PathBuf::from("demo.trace")),
        source: if args.live {
            format!("demo stream from {name}")
        } else {
            format!("recording {name}")
        },
    };
    let rate = args.rate.max(1);
    let feeder = if args.live {
        thread::spawn(move || live(&journeys, rate, &tx))
    } else {
        thread::spawn(move || replay(journeys, &tx))
    };
    tui::run(header, rx).context("terminal UI")?;
    // The feeder stops when it finds the channel closed.
    let _ = feeder.join();
    Ok(())
}

fn replay(journeys: Vec<Journey>, tx: &SyncSender<UiEvent>) {
    for j in journeys {
        if tx.send(UiEvent::Journey(Box::new(j))).is_err() {
            return;
        }
    }
    let _ = tx.send(UiEvent::SourceEnded);
}

fn live(journeys: &[Journey], rate: u64, tx: &SyncSender<UiEvent>) {
    let started = Instant::now();
    let wall0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let wall0 = i128::try_from(wall0).unwrap_or(0);
    let mono0: u64 = 1_000_000_000_000;
    let mut sent: u64 = 0;
    let mut noticed = false;
    loop {
        let elapsed = started.elapsed();
        let due = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX) * rate / 1000;
        while sent < due {
            let idx = usize::try_from(sent).unwrap_or(0) % journeys.len();
            let mut j = journeys[idx].clone();
            let t = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            j.id = sent + 1;
            j.start_ns = mono0 + t;
            j.started_at = rfc3339(wall0 + i128::from(t));
            if tx.send(UiEvent::Journey(Box::new(j))).is_err() {
                return;
            }
            sent += 1;
        }
        let secs = elapsed.as_secs();
        let mut counters = Counters::default();
        counters.source.ringbuf_full = secs / 3;
        counters.source.parse_failed = secs / 20;
        let loss = UiEvent::Counters(counters);
        if tx.send(loss).is_err() {
            return;
        }
        if secs >= 10 && !noticed {
            noticed = true;
            let notice = "recording: disk full, recording stopped (demo)".to_owned();
            if tx.send(UiEvent::Notice(notice)).is_err() {
                return;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}
