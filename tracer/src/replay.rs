//! A recording as a source: its records turned back into the inputs the live session fed
//! its pipeline (`crate::pipeline`), so replay explains with the same correlator, names
//! from what the recording carries (the cluster's names, namespaces, routes, drop-reason
//! names), and needs no privileges, no cluster and not even the same kernel.
//!
//! Version 1 recordings (before context records carried their start time) are read too:
//! their context holds from the newest observation read before it, and a batch of
//! observations closes packets by its newest timestamp.

use std::{path::Path, sync::Arc};

use crate::{
    journey::{assemble::RawJourney, model::Journey},
    k8s::{ClusterModel, model::ModelRows},
    output::{Sink, Summary},
    pipeline::{Correlated, Flow, Input, Pipeline, Session, counters::ReadCounters},
    record::{
        format::{Meta, Record},
        reader::{Reader, RecordingError, Step},
    },
    topology::Topology,
};

/// The inputs of a recording, in order: a file, or an agent's live stream.
pub struct Recording<R = std::fs::File> {
    reader: Reader<R>,
    meta: Option<Meta>,
    /// The newest cluster version's rows and start (NAMES records add to it).
    rows: ModelRows,
    rows_since: u64,
    /// A topology being read in parts.
    topology: Option<(u64, Topology)>,
    /// Version 1: the newest observation read so far.
    seen_until: u64,
    read: ReadCounters,
    /// Whether anything at all could be read (a META or an observation).
    read_anything: bool,
    /// How the file ended: cleanly (an END record), or cut at an offset and why.
    clean: bool,
    cut: Option<(u64, String)>,
    /// Damage skipped so far, for the summary.
    skipped: Vec<String>,
    /// A step read ahead while joining a batch's records.
    ahead: Option<Step>,
    /// An input read ahead while looking for the session ([`Self::read_session`]).
    held: Option<Input>,
}

impl Recording {
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        Ok(Self::of(Reader::open(path)?))
    }
}

impl<R: std::io::Read> Recording<R> {
    /// A recording read from `input` as it arrives (an agent's stream); `name` is for
    /// messages.
    pub fn from_reader(input: R, name: &str) -> Result<Self, RecordingError> {
        Ok(Self::of(Reader::new(input, name)?))
    }

    fn of(reader: Reader<R>) -> Self {
        Self {
            reader,
            meta: None,
            rows: ModelRows::default(),
            rows_since: 0,
            topology: None,
            seen_until: 0,
            read: ReadCounters::default(),
            read_anything: false,
            clean: false,
            cut: None,
            skipped: Vec::new(),
            ahead: None,
            held: None,
        }
    }

    /// The session, from the first input (the META record); `None` when that is damaged.
    /// Any other input read is handed on by the next [`Self::next_input`].
    pub fn read_session(&mut self) -> Option<Session> {
        match self.next_input()? {
            Input::Session(session) => Some(Session::clone(&session)),
            other => {
                self.held = Some(other);
                None
            }
        }
    }

    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// What the reader skipped so far.
    pub fn read_counters(&self) -> ReadCounters {
        self.read
    }

    /// The next input; `None` at the end of the recording.
    pub fn next_input(&mut self) -> Option<Input> {
        if let Some(input) = self.held.take() {
            return Some(input);
        }
        loop {
            match self.next_step() {
                Step::Record(Record::Observations {
                    now_ns: Some(now_ns),
                    mut batch,
                }) => {
                    // The records of one live batch (they share its `now_ns`) are one
                    // input again: packets are closed after the whole batch, as live.
                    loop {
                        match self.next_step() {
                            Step::Record(Record::Observations {
                                now_ns: Some(next),
                                batch: more,
                            }) if next == now_ns => batch.extend(more),
                            other => {
                                self.ahead = Some(other);
                                break;
                            }
                        }
                    }
                    let record = Record::Observations {
                        now_ns: Some(now_ns),
                        batch,
                    };
                    if let Some(input) = self.input_of(record) {
                        return Some(input);
                    }
                }
                Step::Record(record) => {
                    if let Some(input) = self.input_of(record) {
                        return Some(input);
                    }
                }
                Step::Skipped { offset, bytes, why } => {
                    self.read.damaged += 1;
                    self.read.damaged_bytes += bytes;
                    let text = format!(
                        "recording damaged at byte {offset}: {bytes} bytes skipped ({why})"
                    );
                    self.skipped.push(text.clone());
                    return Some(Input::Notice {
                        at_ns: self.seen_until,
                        text,
                    });
                }
                Step::End { clean } => {
                    self.clean = clean;
                    return None;
                }
                Step::Cut { offset, why } => {
                    self.cut = Some((offset, why));
                    return None;
                }
            }
        }
    }

    fn next_step(&mut self) -> Step {
        self.ahead.take().unwrap_or_else(|| self.reader.next_step())
    }

    fn input_of(&mut self, record: Record) -> Option<Input> {
        Some(match record {
            Record::Meta(meta) => {
                self.read_anything = true;
                let session = Arc::new(meta.session.clone());
                self.meta = Some(*meta);
                Input::Session(session)
            }
            Record::ClusterObjects(objects) => Input::Cluster {
                since_ns: self.seen_until,
                names: Arc::new(objects.model()),
            },
            Record::Cluster(cluster) => {
                self.rows = cluster.rows;
                self.rows_since = cluster.since_ns;
                self.names()
            }
            Record::Names(rows) => {
                self.rows.merge(*rows);
                self.names()
            }
            Record::Topology(record) => {
                let since = if self.reader.version() < 2 {
                    self.seen_until
                } else {
                    record.since_ns
                };
                let topology = match self.topology.take() {
                    Some((s, mut parts)) if s == since => {
                        parts.hosts.extend(record.topology.hosts);
                        parts.reindex();
                        parts
                    }
                    _ => record.topology,
                };
                if record.more {
                    self.topology = Some((since, topology));
                    return None;
                }
                Input::Topology {
                    since_ns: since,
                    topology: Arc::new(topology),
                }
            }
            Record::DropReasons(pairs) => Input::DropReasons(Arc::new(
                crate::drop_reason::DropReasons::from_recorded(pairs),
            )),
            Record::Observations { now_ns, batch } => {
                self.read_anything = true;
                let newest = batch.iter().map(|o| o.ts_ns).max().unwrap_or(0);
                self.seen_until = self.seen_until.max(newest);
                Input::Observations {
                    now_ns: now_ns.unwrap_or(newest),
                    batch,
                }
            }
            Record::Counters(counters) => Input::Counters(counters),
            Record::HopCounts(record) => Input::HopCounts {
                at_ns: record.at_ns,
                counts: Arc::new(record.counts),
            },
            Record::Notice(notice) => Input::Notice {
                at_ns: notice.at_ns,
                text: notice.text,
            },
            Record::End(_) => return None,
            Record::Unknown(_) => {
                self.read.unknown_records += 1;
                return None;
            }
        })
    }

    /// The newest cluster version as read so far.
    fn names(&self) -> Input {
        Input::Cluster {
            since_ns: self.rows_since,
            names: Arc::new(ClusterModel::from_rows(self.rows.clone())),
        }
    }

    /// Notes for the summary: where the file was damaged or cut, or that it has no end
    /// record.
    fn notes(&self) -> Vec<String> {
        let mut notes = self.skipped.clone();
        if let Some((offset, why)) = &self.cut {
            notes.push(format!(
                "recording cut at byte {offset}: {why}; everything before it was replayed"
            ));
        } else if !self.clean {
            notes.push("recording has no end record: the recorder was stopped abruptly (SIGKILL, crash or full disk); everything written was replayed".to_owned());
        }
        notes
    }
}

/// What a replay found.
pub struct Replayed {
    pub summary: Summary,
    /// The recording's META record, if it could be read.
    pub meta: Option<Meta>,
}

/// Replays `path` into `sink` through the pipeline and ends with the summary. The summary
/// says `failed` when nothing at all could be read.
pub fn replay(path: &Path, sink: &mut dyn Sink) -> anyhow::Result<Replayed> {
    let mut recording = Recording::open(path)?;
    let summary = run(&mut recording, &path.display().to_string(), sink)?;
    Ok(Replayed {
        summary,
        meta: recording.meta,
    })
}

/// Replays several recordings as one session, stitched ([`merge`]); one is replayed as is.
pub fn replay_all(paths: &[std::path::PathBuf], sink: &mut dyn Sink) -> anyhow::Result<Replayed> {
    if let [path] = paths {
        return replay(path, sink);
    }
    // Recordings of several machines are read twice: once to compare their clocks by the
    // packets that crossed between them, once with the clocks corrected.
    let clocks = merge::estimate_clocks(paths)?;
    let corrections: Vec<i64> = std::iter::once(0)
        .chain(clocks.iter().map(|c| c.offset_ns))
        .collect();
    let mut merged = merge::Merged::open_with(paths, &corrections)?.with_clocks(clocks);
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let summary = run(&mut merged, &names.join(", "), sink)?;
    Ok(Replayed {
        summary,
        meta: merged.meta(),
    })
}

/// What replay reads: one recording, or several merged (files, or agents' live streams).
pub(crate) trait Inputs {
    fn next_input(&mut self) -> Option<Input>;
    fn read_counters(&self) -> ReadCounters;
    fn notes(&self) -> Vec<String>;
    fn read_anything(&self) -> bool;
    /// Adds what only this kind of input knows to the summary.
    fn complete(&self, _summary: &mut Summary) {}
}

impl<R: std::io::Read> Inputs for Recording<R> {
    fn next_input(&mut self) -> Option<Input> {
        Recording::next_input(self)
    }
    fn read_counters(&self) -> ReadCounters {
        self.read
    }
    fn notes(&self) -> Vec<String> {
        Recording::notes(self)
    }
    fn read_anything(&self) -> bool {
        self.read_anything
    }
}

impl Inputs for merge::Merged {
    fn next_input(&mut self) -> Option<Input> {
        merge::Merged::next_input(self)
    }
    fn read_counters(&self) -> ReadCounters {
        merge::Merged::read_counters(self)
    }
    fn notes(&self) -> Vec<String> {
        merge::Merged::notes(self)
    }
    fn read_anything(&self) -> bool {
        merge::Merged::read_anything(self)
    }
    fn complete(&self, summary: &mut Summary) {
        merge::Merged::complete(self, summary);
    }
}

/// Feeds every input through the pipeline into `sink` and ends with the summary, which
/// says `failed` when nothing at all could be read from `what`.
fn run(inputs: &mut dyn Inputs, what: &str, sink: &mut dyn Sink) -> anyhow::Result<Summary> {
    run_until(inputs, what, sink, None)
}

/// [`run`], stopping after `count` journeys when given (a live `follow --agent --count`).
pub(crate) fn run_until(
    inputs: &mut dyn Inputs,
    what: &str,
    sink: &mut dyn Sink,
    count: Option<u64>,
) -> anyhow::Result<Summary> {
    let mut pipeline = Pipeline::new(sink, count);
    while let Some(input) = inputs.next_input() {
        if pipeline.feed(input)? == Flow::Stop {
            break;
        }
    }
    pipeline.finish()?;
    pipeline.set_read_counters(inputs.read_counters());
    let counters = pipeline.counters();
    let mut summary = Summary {
        journeys: pipeline.tally(),
        observations: counters.pipeline.observations,
        counters,
        notes: inputs.notes(),
        failed: !inputs.read_anything(),
        ..Summary::default()
    };
    summary.notes.extend(pipeline.sampling_note());
    if summary.failed {
        summary
            .notes
            .push(format!("nothing could be read from {what}"));
    }
    inputs.complete(&mut summary);
    pipeline.sink().finish(&summary)?;
    Ok(summary)
}

/// A sink that hands each journey, with its raw observations, to a function (exports);
/// the function returns false to stop.
pub struct Each<F>(pub F);

impl<F: FnMut(&RawJourney, &Journey) -> bool> Sink for Each<F> {
    fn journey(&mut self, _journey: &Journey) -> std::io::Result<()> {
        Ok(())
    }

    fn correlated(&mut self, correlated: &Correlated) -> std::io::Result<()> {
        if (self.0)(&correlated.raw, &correlated.journey) {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stopped by the consumer",
            ))
        }
    }

    fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
        Ok(())
    }

    fn notice(&mut self, _text: &str) {}
}

/// What a recording followed (its META record), for headers.
pub fn following(path: &Path) -> Option<String> {
    let mut recording = Recording::open(path).ok()?;
    while let Some(input) = recording.next_input() {
        if let Input::Session(session) = input {
            return Some(session.following.clone());
        }
    }
    None
}

pub mod merge;
#[cfg(test)]
mod tests;
