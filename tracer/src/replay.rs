//! A recording as a source of journeys: the same assembler and explanation as a live
//! `follow`, fed from the file, with the names the recording carries (its cluster
//! objects, namespaces, routes and drop-reason names), so it needs no privileges, no
//! cluster and not even the same kernel.

use std::{path::Path, sync::Arc};

use crate::{
    drop_reason::DropReasons,
    follow::naming::ModelNames,
    journey::{
        assemble::{Assembler, RawJourney},
        explain::{self, Context, Followed},
        memo::Memo,
        model::Journey,
    },
    k8s::model::ClusterModel,
    record::{
        format::{Loss, Meta, Record},
        reader::{Reader, RecordingError, Step},
    },
    timeline::Timeline,
    topology::Topology,
};

/// How the replay ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub meta: Option<Meta>,
    pub observations: u64,
    pub journeys: u64,
    pub loss: Loss,
    /// The recording ended with its end record.
    pub clean: bool,
    /// Where and why the file stops early, if it does.
    pub cut: Option<(u64, String)>,
}

impl Summary {
    /// One line for people.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} journeys from {} observations; events lost in the kernel while recording: {}",
            self.journeys, self.observations, self.loss.ringbuf_full
        );
        if let Some((offset, why)) = &self.cut {
            text.push_str(&format!(
                "\nrecording cut at byte {offset}: {why}; everything before it was replayed"
            ));
        } else if !self.clean {
            text.push_str("\nrecording has no end record: the recorder was stopped abruptly (SIGKILL, crash or full disk); everything written was replayed");
        }
        text
    }
}

/// Reads `path` and hands every journey to `each` in the order they complete; `each`
/// returns false to stop early.
pub fn replay(
    path: &Path,
    mut each: impl FnMut(Journey) -> bool,
) -> Result<Summary, RecordingError> {
    replay_raw(path, |_, journey| each(journey))
}

/// Like [`replay`], with each journey's raw observations (exports need every header field).
pub fn replay_raw(
    path: &Path,
    mut each: impl FnMut(&RawJourney, Journey) -> bool,
) -> Result<Summary, RecordingError> {
    let mut reader = Reader::open(path)?;
    let mut summary = Summary::default();
    let mut names = Recorded::default();
    let mut assembler = Assembler::new();
    loop {
        match reader.next_step() {
            Step::Record(record) => match record {
                Record::Meta(meta) => {
                    names.followed = Followed {
                        from: meta.from_ips.clone(),
                        to: meta.to_ips.clone(),
                    };
                    names.wall_offset_ns = meta.wall_offset_ns;
                    summary.meta = Some(*meta);
                }
                // Context written during the session (Pods replaced) holds for the packets
                // recorded after it; earlier ones keep the names of their time.
                Record::Cluster(objects) => names
                    .models
                    .push(names.seen_until, Arc::new(objects.model())),
                Record::Topology(topology) => {
                    names.topologies.push(names.seen_until, Arc::new(*topology))
                }
                Record::DropReasons(pairs) => names.reasons = DropReasons::from_recorded(pairs),
                Record::Observations(batch) => {
                    let mut closed = Vec::new();
                    let mut latest = 0;
                    for obs in batch {
                        summary.observations += 1;
                        latest = latest.max(obs.ts_ns);
                        closed.extend(assembler.push(obs));
                    }
                    names.seen_until = names.seen_until.max(latest);
                    closed.extend(assembler.flush(latest));
                    if !names.explain(closed, &mut summary, &mut each) {
                        return Ok(summary);
                    }
                }
                Record::Loss(loss) => summary.loss = loss,
                Record::End(_) | Record::Unknown(_) => {}
            },
            Step::End { clean } => {
                summary.clean = clean;
                break;
            }
            Step::Cut { offset, why } => {
                summary.cut = Some((offset, why));
                break;
            }
        }
    }
    names.explain(assembler.flush(u64::MAX), &mut summary, &mut each);
    Ok(summary)
}

/// What the recording says about the world it was made in.
#[derive(Default)]
struct Recorded {
    models: Timeline<ClusterModel>,
    topologies: Timeline<Topology>,
    /// The newest observation read so far: context read now holds from after it.
    seen_until: u64,
    reasons: DropReasons,
    followed: Followed,
    wall_offset_ns: i128,
    memo: Memo,
}

impl Recorded {
    /// Explains finished packets; false once `each` asks to stop.
    fn explain(
        &self,
        raws: Vec<RawJourney>,
        summary: &mut Summary,
        each: &mut impl FnMut(&RawJourney, Journey) -> bool,
    ) -> bool {
        for raw in raws {
            summary.journeys += 1;
            // Named as at the packet's start, as a live session names it.
            let started = raw.observations.first().map_or(u64::MAX, |o| o.ts_ns);
            let (model_id, model) = self.models.at(started).unwrap_or_default();
            let (topology_id, topology) = self.topologies.at(started).unwrap_or_default();
            self.memo.renew((model_id, topology_id));
            let names = ModelNames(&model);
            let ctx = Context {
                topology: &topology,
                cluster: &names,
                reasons: &self.reasons,
                followed: &self.followed,
                wall_offset_ns: self.wall_offset_ns,
                memo: &self.memo,
            };
            let journey = explain::explain(&raw, &ctx);
            if !each(&raw, journey) {
                return false;
            }
        }
        true
    }
}

/// What a recording followed (its META record), for headers.
pub fn following(path: &Path) -> Option<String> {
    let mut reader = Reader::open(path).ok()?;
    match reader.next_step() {
        Step::Record(Record::Meta(meta)) => Some(meta.following),
        _ => None,
    }
}
