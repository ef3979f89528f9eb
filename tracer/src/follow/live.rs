//! The live source: the kernel's events, the cluster's names and the topology as they
//! change, turned into the pipeline's inputs ([`crate::pipeline::Input`]) — recorded first
//! when the session records, then correlated.
//!
//! One loop on this thread, each round: a stop check, the rediscovery tick (new Pods,
//! vanished interfaces), a look at the cluster's newest model, a drain of the ring buffer
//! ([`crate::events::EventStream::next_batch`] sleeps when it is nearly idle), and every
//! second the source's counters. Drops seen in namespaces outside the traced ones (another
//! network using the same addresses) are left out here, counted.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Kernel, rediscover::Rediscover, signals};
use crate::{
    clock::monotonic_ns,
    journey::observation::{Hook, Observation},
    k8s::ClusterHandle,
    output::Summary,
    pipeline::{Flow, Input, Pipeline, Session, counters::SourceCounters},
    record::writer::{Recorder, RecordingReport},
    topology::Topology,
};

/// What ends a live session, and whether it correlates.
pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Record raw observations and leave correlation to `tracer replay` (the
    /// `--output summary --record` session, the cheapest way to capture a flood). Has no
    /// effect without a recorder, or once the recording has failed.
    pub record_only: bool,
    /// End the session when its recording fails: an agent streaming to a `follow` whose
    /// reader went away has no one left to tell.
    pub end_with_recording: bool,
}

/// At the stop, the ring is drained at most this many times (each takes what is there).
const FINAL_DRAINS: usize = 16;

/// How a live session ended.
pub struct Outcome {
    pub summary: Summary,
    pub recording: Option<RecordingReport>,
}

/// What the live source reads from: the kernel side, the cluster, and the topology and plan
/// the session started with.
pub struct Sources<'a> {
    pub kernel: &'a mut Kernel,
    pub cluster: &'a ClusterHandle,
    pub topology: &'a Topology,
    pub plan: &'a super::plan::FollowPlan,
}

/// Reads until a limit, Ctrl-C or SIGTERM; every input goes to the recorder, if any, then
/// to the pipeline (observations only while correlating: a record-only session leaves that
/// to `tracer replay`, until its recording fails).
pub fn run(
    sources: Sources<'_>,
    session: Session,
    limits: &Limits,
    pipeline: &mut Pipeline<'_>,
    mut recorder: Option<Recorder>,
) -> anyhow::Result<Outcome> {
    let Sources {
        kernel,
        cluster,
        topology,
        plan,
    } = sources;
    let started = Instant::now();
    let live = Rediscover::new(topology, plan, cluster, kernel);
    let mut correlate = !(limits.record_only && recorder.is_some());
    let node_scoped = plan.node.is_some();
    let mut recording_failed = false;
    let mut offered = 0u64;
    let feed = |input: Input,
                recorder: &mut Option<Recorder>,
                pipeline: &mut Pipeline<'_>,
                correlate: bool|
     -> std::io::Result<Flow> {
        if let Some(recorder) = recorder.as_mut() {
            recorder.record(&input);
        }
        if !correlate && matches!(input, Input::Observations { .. }) {
            return Ok(Flow::Continue);
        }
        pipeline.feed(input)
    };

    // What the packets seen from the start are named by.
    let (_, names) = cluster.latest();
    let mut names_in_use = Arc::clone(&names);
    let mut topology_generation = live.generation();
    for input in [
        Input::Session(Arc::new(session)),
        Input::DropReasons(Arc::new(kernel.reasons.clone())),
        Input::Cluster { since_ns: 0, names },
        Input::Topology {
            since_ns: 0,
            topology: live.current(),
        },
    ] {
        feed(input, &mut recorder, pipeline, correlate)?;
    }

    let mut events = Vec::new();
    let mut last_read = 0;
    let mut last_counters = Instant::now();
    let mut counters = SourceCounters::default();
    let mut notices = Vec::new();
    loop {
        let stopping =
            signals::stop_requested() || limits.duration.is_some_and(|d| started.elapsed() >= d);
        live.tick(kernel, &mut notices);
        if let Some(log) = &mut kernel.log {
            log.drain_into(&mut notices);
        }
        for text in notices.drain(..) {
            let at_ns = monotonic_ns();
            feed(
                Input::Notice { at_ns, text },
                &mut recorder,
                pipeline,
                correlate,
            )?;
        }
        if live.generation() != topology_generation {
            topology_generation = live.generation();
            let input = Input::Topology {
                since_ns: monotonic_ns(),
                topology: live.current(),
            };
            feed(input, &mut recorder, pipeline, correlate)?;
        }
        let (since_ns, names) = cluster.latest();
        if !Arc::ptr_eq(&names, &names_in_use) {
            names_in_use = Arc::clone(&names);
            feed(
                Input::Cluster { since_ns, names },
                &mut recorder,
                pipeline,
                correlate,
            )?;
        }

        if stopping {
            // What the kernel wrote before the stop is still shown, however far behind the
            // reader was: drain the ring until it is empty (a few rounds at most, since
            // traffic may still be flowing).
            for _ in 0..FINAL_DRAINS {
                if kernel.stream.drain_into(&mut events) == 0 {
                    break;
                }
            }
        } else {
            last_read = kernel.stream.next_batch(last_read, &mut events);
        }
        let now_ns = monotonic_ns();
        let in_scope = live.current();
        let batch: Vec<Observation> = events
            .drain(..)
            .filter_map(|e| Observation::from_kernel(&e))
            // The drop tracepoint sees every namespace on the machine: keep drops in the
            // traced ones (and those whose namespace is unknown), not another network's
            // packets that happen to carry the same addresses. A node's agent on a machine
            // that holds several nodes keeps only its node's routing and NAT too: the
            // other nodes' agents record theirs.
            .filter(|o| {
                let outside = o.netns_cookie != 0 && in_scope.host(o.netns_cookie).is_none();
                // A node's agent cannot tell another network's drop from another node's,
                // which that node's agent records: it counts neither as foreign.
                counters.foreign_drops +=
                    u64::from(outside && o.hook == Hook::Drop && !node_scoped);
                !(outside && (o.hook == Hook::Drop || node_scoped))
            })
            .collect();
        offered += batch.len() as u64;
        let flow = feed(
            Input::Observations { now_ns, batch },
            &mut recorder,
            pipeline,
            correlate,
        )?;

        if last_counters.elapsed() >= Duration::from_secs(1) {
            last_counters = Instant::now();
            counters = source_counters(kernel, counters, recorder.as_ref());
            feed(
                Input::Counters(counters),
                &mut recorder,
                pipeline,
                correlate,
            )?;
            if let Some(input) = hop_counts(kernel, now_ns) {
                feed(input, &mut recorder, pipeline, correlate)?;
            }
        }
        if !recording_failed && let Some(error) = recorder.as_ref().and_then(Recorder::error) {
            recording_failed = true;
            if limits.end_with_recording {
                pipeline.sink().notice(&format!(
                    "the stream's reader went away ({error}): stopping"
                ));
                break;
            }
            let text = if correlate {
                format!("recording stopped: {error}; following continues without it")
            } else {
                // Record-only: the session must not be lost with the recording.
                correlate = true;
                format!(
                    "recording stopped: {error}; following continues, correlating the packets live from now on"
                )
            };
            pipeline.sink().notice(&text);
        }
        if stopping || flow == Flow::Stop {
            break;
        }
    }
    // The last counts go before the open packets are closed: the flows shown at the end
    // have both.
    if let Some(input) = hop_counts(kernel, monotonic_ns()) {
        feed(input, &mut recorder, pipeline, correlate)?;
    }
    pipeline.finish()?;
    counters = source_counters(kernel, counters, recorder.as_ref());
    feed(
        Input::Counters(counters),
        &mut recorder,
        pipeline,
        correlate,
    )?;
    let recording = recorder.map(Recorder::finish);
    let record_only = limits.record_only && recording.as_ref().is_some_and(|r| !r.failed());
    let mut summary = Summary {
        journeys: pipeline.tally(),
        observations: if record_only {
            offered
        } else {
            pipeline.counters().pipeline.observations
        },
        record_only,
        counters: pipeline.counters(),
        ..Summary::default()
    };
    summary.notes.extend(live.disruptions());
    summary.notes.extend(pipeline.sampling_note());
    if let Some(report) = &recording {
        if limits.end_with_recording {
            // A stream ends when its reader goes: that is how an agent's session ends.
            summary.notes.push(format!(
                "streamed {} observations to {}{}",
                report.saved,
                report.path.display(),
                report
                    .error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(" until it went away ({e})"))
            ));
        } else {
            summary.notes.push(report.describe());
            summary.failed |= report.failed();
        }
    }
    Ok(Outcome { summary, recording })
}

/// A sampling run's counts so far, for the flows and the recording.
fn hop_counts(kernel: &mut Kernel, at_ns: u64) -> Option<Input> {
    kernel.hop_counts().map(|counts| Input::HopCounts {
        at_ns,
        counts: Arc::new(counts),
    })
}

/// The kernel's loss counters and the reader's, as running totals.
fn source_counters(
    kernel: &Kernel,
    so_far: SourceCounters,
    recorder: Option<&Recorder>,
) -> SourceCounters {
    let loss = kernel.loss();
    SourceCounters {
        ringbuf_full: loss.ringbuf_full,
        failures_lost: Some(loss.failures_lost),
        parse_failed: loss.parse_failed,
        undecodable: kernel.stream.undecodable,
        foreign_drops: so_far.foreign_drops,
        unrecorded_batches: recorder.map_or(0, Recorder::unrecorded_batches),
        uncounted: loss.uncounted,
        evicted_unread: kernel.evicted_unread,
    }
}
