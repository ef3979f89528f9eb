//! Several recordings as one session: each node's recording (`tracer agent --record`, or
//! `follow --record` on a machine of its own) read side by side and handed to one pipeline
//! as if one source had seen every node, so journeys that cross nodes come out whole.
//!
//! - **Clocks.** Each recording's times are CLOCK_MONOTONIC of its own kernel. Recordings
//!   of one boot (`Session::boot_id`: the lab, where every node shares one kernel) share
//!   that clock exactly and are not shifted. Recordings of different machines are put on
//!   one timeline by their wall-clock offsets (`Session::wall_offset_ns`), then corrected
//!   by the packets that crossed between them ([`clocks`]; `replay_all` reads the files
//!   once for that, and once more to replay them). One constant offset per machine: clock
//!   drift over a long session is not modelled.
//! - **Namespaces.** Cookies are numbered per kernel, so each boot is a
//!   [`SourceId`] that qualifies its cookies; recordings of one boot keep theirs, and an
//!   event two of them both recorded (a drop whose namespace is unknown, which every agent
//!   of a shared kernel sees; every hop, when a recording of all nodes is given with a
//!   node's) is handed on once, counted: equal observations from two of its recordings
//!   within [`SAME_EVENT_NS`] of each other. The same file given twice is refused.
//! - **Context.** The topology handed on is the union of each recording's newest (by
//!   cookie), the names the union of their rows, the drop-reason names one table into which
//!   each kernel's values are translated (the enum is renumbered between kernels), and the
//!   counters the sum of each recording's newest totals. Context versions are handed on as
//!   they are read, their starts kept in order.
//! - **Order.** Observations are held until every recording still being read has read past
//!   them (each batch says when it was read), then handed on in time order in one batch
//!   stamped with that time: packets close by the slowest recording's progress, not by
//!   whichever file happens to be read first. An event a live session read in the batch
//!   after its time (stamped as the drain ended) is handed on late, as it was live.

use std::{collections::HashMap, path::Path, sync::Arc};

use super::Recording;
use crate::{
    drop_reason::DropReasons,
    journey::{
        counted::HopCounts,
        observation::{Hook, Observation},
    },
    k8s::{ClusterModel, model::ModelRows},
    pipeline::{
        Input, Session, counters::ReadCounters, counters::SourceCounters, source::SourceId,
    },
    topology::Topology,
};

/// Drop-reason values given to names that collide across kernels start here, above any
/// kernel's `enum skb_drop_reason` (about 100 values in 6.x).
const TRANSLATED_REASONS: u32 = 1 << 20;

/// At a live session's stop, the streams are read this much longer (a stream that pauses
/// this long ends sooner): what the agents sent before the stop is still told.
const STOP_DRAIN: std::time::Duration = std::time::Duration::from_millis(200);

/// Two recordings of one kernel hold the same event when they hold equal observations this
/// close: each process's programs stamp it as they run, one after the other, microseconds
/// apart.
const SAME_EVENT_NS: u64 = 100_000;

/// How the notice that sets a live stitch's clocks begins (the terminal UI keeps it in its
/// header).
pub const CLOCKS_NOTICE: &str = "clocks set by the packets that crossed: ";

/// What a part is read from: a file, or an agent's stream.
pub type Stream = Box<dyn std::io::Read + Send>;

/// The socket under an agent's stream: its reads are timed out, and it is closed when the
/// agent is given up (the agent learns at once that its reader is gone).
pub trait Socket: Send {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()>;
    fn close(&self);
    /// What happened to it that the session should say (a connection opened again).
    fn news(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Socket for std::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }

    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// One agent's live stream.
pub struct LiveStream {
    /// Where it comes from, for messages ("agent 10.0.0.12:7400").
    pub name: String,
    pub reader: Stream,
    pub socket: Box<dyn Socket>,
}

impl LiveStream {
    /// A stream read straight from its TCP connection.
    pub fn tcp(name: String, stream: std::net::TcpStream) -> std::io::Result<Self> {
        Ok(Self {
            name,
            socket: Box::new(stream.try_clone()?),
            reader: Box::new(stream),
        })
    }
}

/// One recording and what it has contributed so far.
struct Part {
    recording: Recording<Stream>,
    /// How its hooks were attached, as its session says.
    attached: Option<String>,
    /// The node it traced, its host name, or its file name: how notes name it.
    label: String,
    /// Nanoseconds added to each of its times to put it on the merged timeline.
    shift: i64,
    source: SourceId,
    /// Its newest batch's read time (merged timeline); `None` before its first batch.
    read_until: Option<u64>,
    /// Read no more: it ended, or the session stopped reading.
    done: bool,
    /// It ended by itself (the file's end, or the agent's stream closed).
    ended: bool,
    /// An agent's stream: to time reads out, and to close when given up.
    socket: Option<Box<dyn Socket>>,
    rows: ModelRows,
    topology: Option<Topology>,
    counters: Option<SourceCounters>,
    /// Its kernel's drop-reason values → the merged table's.
    reasons: HashMap<u32, u32>,
}

impl Part {
    fn at(&self, ns: u64) -> u64 {
        shifted(ns, self.shift)
    }
}

fn shifted(ns: u64, by: i64) -> u64 {
    u64::try_from(i128::from(ns) + i128::from(by)).unwrap_or(0)
}

/// The merged inputs of several recordings, in order.
pub struct Merged {
    parts: Vec<Part>,
    session: Session,
    /// Inputs ready to hand on.
    queue: std::collections::VecDeque<Input>,
    /// Observations read but not yet handed on (merged timeline, qualified cookies), each
    /// with the part it came from.
    pending: Vec<(Observation, usize)>,
    /// The read time of the last batch handed on.
    handed_until: u64,
    /// The newest start of a context version handed on: versions are handed on in order of
    /// their start, as one source hands them on.
    context_since: u64,
    reason_names: Vec<(u32, String)>,
    duplicates: u64,
    clock_note: String,
    /// Each machine's name: its recordings' labels.
    machines: Vec<String>,
    /// What could not be known of some recordings, for the summary.
    doubts: Vec<String>,
    clocks: Vec<clocks::ClockEstimate>,
    /// Agents' live streams, not files.
    live: bool,
    /// When a live session asked to stop: streams are drained of what was sent for a moment,
    /// then closed.
    stopping: Option<std::time::Instant>,
    /// A live stitch of several machines, until the packets that crossed set their clocks.
    calibration: Option<live_clocks::Calibration>,
}

impl Merged {
    /// Opens every recording and reads its META. Refuses recordings of different sessions
    /// (other endpoints or filters): their journeys do not belong together.
    pub fn open(paths: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        Self::open_with(paths, &[])
    }

    /// Opens as [`Self::open`] does, each machine's times corrected by `corrections[m]`
    /// (nanoseconds its clock is ahead of the first machine's, beyond what the wall clocks
    /// said; see [`clocks`]).
    pub fn open_with(paths: &[impl AsRef<Path>], corrections: &[i64]) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        let mut files = std::collections::HashSet::new();
        for path in paths {
            let path = path.as_ref();
            // The same file twice would count everything in it twice.
            if !files.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())) {
                return Err(crate::exit::Usage(format!(
                    "{} is given twice: each recording is stitched once",
                    path.display()
                ))
                .into());
            }
            // Refused here as `tracer replay FILE` refuses it (not a recording, unreadable).
            Recording::open(path)?;
            let file = std::fs::File::open(path)?;
            let name = path.display().to_string();
            sources.push((
                Recording::from_reader(Box::new(file) as Stream, &name)?,
                name,
            ));
        }
        Self::of_sources(sources, corrections, false)
    }

    /// Agents' live streams (`tracer agent --listen`), each named by where it comes from.
    /// No clock correction: a stream cannot be read twice (its recording can).
    /// Each stream is read with `silence` as its timeout once its start (header and META)
    /// has come, which may take as long as the agent's attaching does.
    pub fn from_streams(
        streams: Vec<LiveStream>,
        silence: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        let mut sockets = Vec::new();
        // An agent whose stream ends before its start is that node lost: the others go on.
        let mut lost = Vec::new();
        for LiveStream {
            name,
            reader,
            socket,
        } in streams
        {
            match Recording::from_reader(reader, &name) {
                Ok(recording) => {
                    sockets.push(socket);
                    sources.push((recording, name));
                }
                Err(e) => lost.push(format!("{name}: lost before its stream began ({e})")),
            }
        }
        if sources.is_empty() {
            anyhow::bail!("no agent's stream began: {}", lost.join("; "));
        }
        for note in &lost {
            eprintln!("  {note}");
        }
        let mut merged = Self::of_sources(sources, &[], true)?;
        merged.doubts.extend(lost);
        if merged.machines.len() > 1 {
            merged.calibration = Some(live_clocks::Calibration::new(merged.machines.len()));
        }
        for (part, socket) in merged.parts.iter_mut().zip(sockets) {
            socket.set_read_timeout(Some(silence))?;
            part.socket = Some(socket);
        }
        Ok(merged)
    }

    fn of_sources(
        sources: Vec<(Recording<Stream>, String)>,
        corrections: &[i64],
        live: bool,
    ) -> anyhow::Result<Self> {
        let names: Vec<String> = sources.iter().map(|(_, n)| n.clone()).collect();
        let mut opened = Vec::new();
        for (mut recording, name) in sources {
            let session = recording.read_session();
            let label = session
                .as_ref()
                .and_then(|s| s.node.clone())
                .or_else(|| recording.meta().map(|m| m.hostname.clone()))
                .filter(|l| !l.is_empty())
                .unwrap_or(name);
            opened.push((recording, session, label));
        }
        let sessions: Vec<&Session> = opened.iter().filter_map(|(_, s, _)| s.as_ref()).collect();
        let Some(first) = sessions.first().copied() else {
            anyhow::bail!("none of the recordings has a readable start (META record)");
        };
        for (name, (_, session, _)) in names.iter().zip(&opened) {
            if let Some(session) = session
                && !same_session(first, session)
            {
                let differs = if session.sample_shift == first.sample_shift {
                    format!("follows {}, not {}", session.following, first.following)
                } else {
                    format!(
                        "traced one packet in {}, not one in {} (`--sample`)",
                        1u64 << session.sample_shift,
                        1u64 << first.sample_shift
                    )
                };
                return Err(crate::exit::Usage(format!(
                    "{name} {differs}: only recordings of one session stitch together"
                ))
                .into());
            }
        }
        // One clock per boot: the first recording of each boot sets its offset.
        let mut boots: Vec<(Option<String>, i64)> = Vec::new();
        let mut boot_of = Vec::new();
        for (_, session, _) in &opened {
            let boot = session.as_ref().and_then(|s| s.boot_id.clone());
            let offset = session
                .as_ref()
                .map_or(first.wall_offset_ns, |s| s.wall_offset_ns);
            let index = boots
                .iter()
                .position(|(b, _)| boot.is_some() && *b == boot)
                .unwrap_or_else(|| {
                    boots.push((boot, offset));
                    boots.len() - 1
                });
            boot_of.push(index);
        }
        // Each machine's wall-clock offset, less what the crossings say its clock is ahead.
        for (machine, (_, offset)) in boots.iter_mut().enumerate() {
            *offset -= corrections.get(machine).copied().unwrap_or(0);
        }
        let earliest = boots.iter().map(|(_, o)| *o).min().unwrap_or(0);
        let mut session = first.clone();
        session.wall_offset_ns = earliest;
        session.node = None;
        // Each source's own, in `sources`.
        session.attached = None;
        if boots.len() > 1 {
            session.boot_id = None;
        }
        let labels: Vec<String> = opened.iter().map(|(_, _, l)| l.clone()).collect();
        let mut doubts = Vec::new();
        for (_, session, label) in &opened {
            match session {
                None => doubts.push(format!(
                    "{label}: its start (META record) is unreadable: assumed to follow what the others follow, on a machine of its own"
                )),
                Some(s) if s.boot_id.is_none() => doubts.push(format!(
                    "{label}: made by a tracer that did not record its kernel's boot: taken as a machine of its own (two such recordings of one machine would show its hops twice)"
                )),
                Some(_) => {}
            }
        }
        let machines = (0..boots.len())
            .map(|machine| {
                let of: Vec<&str> = labels
                    .iter()
                    .zip(&boot_of)
                    .filter(|(_, b)| **b == machine)
                    .map(|(l, _)| l.as_str())
                    .collect();
                of.join("+")
            })
            .collect();
        let what = match (live, opened.len()) {
            (false, 1) => "recording",
            (false, _) => "recordings",
            (true, 1) => "agent's stream",
            (true, _) => "agents' streams",
        };
        let clock_note = if boots.len() == 1 {
            format!(
                "stitched {} {what} ({}): one kernel, one clock",
                opened.len(),
                labels.join(", ")
            )
        } else if live {
            format!(
                "stitched {} {what} ({}) from {} machines, their clocks aligned by each machine's wall clock only: no packet crossed between them to correct them",
                opened.len(),
                labels.join(", "),
                boots.len()
            )
        } else {
            format!(
                "stitched {} {what} ({}) from {} machines, their clocks aligned by each machine's wall clock, then by the packets that crossed between them",
                opened.len(),
                labels.join(", "),
                boots.len()
            )
        };
        let parts = opened
            .into_iter()
            .zip(boot_of)
            .map(|((recording, session, label), boot)| Part {
                recording,
                attached: session.and_then(|s| s.attached),
                label,
                shift: boots[boot].1 - earliest,
                source: SourceId(u16::try_from(boot).unwrap_or(u16::MAX)),
                read_until: None,
                done: false,
                ended: false,
                socket: None,
                rows: ModelRows::default(),
                topology: None,
                counters: None,
                reasons: HashMap::new(),
            })
            .collect();
        let mut queue = std::collections::VecDeque::new();
        queue.push_back(Input::Session(Arc::new(session.clone())));
        Ok(Self {
            parts,
            session,
            queue,
            pending: Vec::new(),
            handed_until: 0,
            context_since: 0,
            reason_names: Vec::new(),
            duplicates: 0,
            clock_note,
            machines,
            doubts,
            clocks: Vec::new(),
            live,
            stopping: None,
            calibration: None,
        })
    }

    /// Reads no more (a live session asked to stop): what was read is still handed on, in
    /// order, by the next calls to [`Self::next_input`].
    pub fn stop_reading(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(std::time::Instant::now());
        for part in &mut self.parts {
            match &part.socket {
                // What the agent sent before the stop is still read: the stream ends at
                // the first pause.
                Some(socket) if !part.done => {
                    let _ = socket.set_read_timeout(Some(STOP_DRAIN));
                }
                _ => part.done = true,
            }
        }
    }

    /// Each recording's name: the node it traced, its host name, or where it was read.
    pub fn names(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.label.clone()).collect()
    }

    /// The machines, by the names of their recordings; the first is the reference clock.
    pub fn machines(&self) -> &[String] {
        &self.machines
    }

    /// The clock estimates its corrections came from, for the summary.
    pub fn with_clocks(mut self, clocks: Vec<clocks::ClockEstimate>) -> Self {
        self.clocks = clocks;
        self
    }

    /// What the summary says of a stitched session beyond a single recording's: each
    /// machine's clock estimate and each recording's own health.
    pub fn complete(&self, summary: &mut crate::output::Summary) {
        summary
            .notes
            .extend(self.clocks.iter().map(clocks::ClockEstimate::text));
        summary.clocks = self.clocks.clone();
        summary.sources = self.sources();
        if summary.sources.len() > 1 {
            let each: Vec<String> = summary.sources.iter().map(SourceHealth::text).collect();
            summary.notes.push(format!("nodes: {}", each.join("; ")));
        }
    }

    /// Each recording's own account, for the summary: what it lost, and whether it ended
    /// cleanly.
    pub fn sources(&self) -> Vec<SourceHealth> {
        self.parts
            .iter()
            .map(|part| SourceHealth {
                name: part.label.clone(),
                machine: self
                    .machines
                    .get(usize::from(part.source.0))
                    .cloned()
                    .unwrap_or_default(),
                counters: part.counters.unwrap_or_default(),
                ended_cleanly: part.recording.clean || self.live && !part.ended,
                attached: part.attached.clone(),
            })
            .collect()
    }

    /// The first recording's META, with the merged session.
    pub fn meta(&self) -> Option<crate::record::format::Meta> {
        let mut meta = self.parts.iter().find_map(|p| p.recording.meta())?.clone();
        meta.session = self.session.clone();
        Some(meta)
    }

    /// The next merged input; `None` when every recording is read and everything handed on.
    pub fn next_input(&mut self) -> Option<Input> {
        loop {
            if let Some(input) = self.queue.pop_front() {
                return Some(input);
            }
            // Agents go on sending after the stop: what came within the drain is told.
            if self.stopping.is_some_and(|at| at.elapsed() >= STOP_DRAIN) {
                for part in &mut self.parts {
                    part.done = true;
                    if let Some(socket) = part.socket.take() {
                        socket.close();
                    }
                }
            }
            // Read from the recording that is furthest behind: its next batch decides how
            // far the merged timeline can go.
            let behind = self
                .parts
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.done)
                .min_by_key(|(_, p)| p.read_until)
                .map(|(i, _)| i);
            let Some(i) = behind else {
                if self.pending.is_empty() {
                    return None;
                }
                self.clocks_allow(true);
                let last = self.pending.iter().map(|(o, _)| o.ts_ns).max().unwrap_or(0);
                self.hand_on(self.handed_until.max(last));
                continue;
            };
            let read = self.parts[i].recording.next_input();
            if let Some(socket) = &self.parts[i].socket {
                for text in socket.news() {
                    let at_ns = self.parts[i].read_until.unwrap_or(self.handed_until);
                    self.queue.push_back(Input::Notice { at_ns, text });
                }
            }
            match read {
                Some(input) => self.take(i, input),
                None => {
                    let part = &mut self.parts[i];
                    part.done = true;
                    // A stream drained at the stop did not end by itself.
                    part.ended = self.stopping.is_none();
                    if self.live && self.stopping.is_none() {
                        // Said as it happens: the node's hops from here on are missing.
                        let text = format!(
                            "{}: agent lost ({}): its node's hops from here on are missing{}",
                            part.label,
                            if part.recording.clean {
                                "its stream ended"
                            } else {
                                "its stream broke off or fell silent"
                            },
                            part.counters
                                .filter(|c| c.ringbuf_full > 0)
                                .map(|c| format!(
                                    ", and its kernel had lost {} events before",
                                    c.ringbuf_full
                                ))
                                .unwrap_or_default()
                        );
                        let at_ns = part.read_until.unwrap_or(self.handed_until);
                        self.queue.push_back(Input::Notice { at_ns, text });
                    }
                    if let Some(socket) = part.socket.take() {
                        // Given up (or drained): its agent learns at once that its reader
                        // is gone.
                        socket.close();
                    }
                    self.advance();
                }
            }
        }
    }

    /// One input of part `i`, put on the merged timeline.
    fn take(&mut self, i: usize, input: Input) {
        let part = &mut self.parts[i];
        match input {
            // Checked at open; the merged session went first.
            Input::Session(_) => {}
            Input::Cluster { since_ns, names } => {
                part.rows = names.rows();
                let since_ns = part.at(since_ns).max(self.context_since);
                self.context_since = since_ns;
                let mut rows = ModelRows::default();
                for part in &self.parts {
                    rows.merge(part.rows.clone());
                }
                self.queue.push_back(Input::Cluster {
                    since_ns,
                    names: Arc::new(ClusterModel::from_rows(rows)),
                });
            }
            Input::Topology { since_ns, topology } => {
                let mut topology = Topology::clone(&topology);
                part.source.qualify_topology(&mut topology);
                part.topology = Some(topology);
                let since_ns = part.at(since_ns).max(self.context_since);
                self.context_since = since_ns;
                let mut union = Topology::default();
                let mut cookies = std::collections::HashSet::new();
                for part in &self.parts {
                    for host in part.topology.iter().flat_map(|t| &t.hosts) {
                        // Two recordings of one kernel may both hold a namespace.
                        if cookies.insert(host.info.cookie) {
                            union.hosts.push(host.clone());
                        }
                    }
                }
                union.reindex();
                let union = Arc::new(union);
                if let Some(calibration) = &mut self.calibration {
                    calibration.topology(union.clone());
                }
                self.queue.push_back(Input::Topology {
                    since_ns,
                    topology: union,
                });
            }
            Input::DropReasons(reasons) => {
                part.reasons = translate(&mut self.reason_names, reasons.to_pairs());
                self.queue
                    .push_back(Input::DropReasons(Arc::new(DropReasons::from_recorded(
                        self.reason_names.clone(),
                    ))));
            }
            Input::Observations { now_ns, mut batch } => {
                for obs in &mut batch {
                    obs.ts_ns = part.at(obs.ts_ns);
                    if obs.hook == Hook::Drop
                        && let Some(value) = part.reasons.get(&obs.drop_reason)
                    {
                        obs.drop_reason = *value;
                    }
                }
                part.source.qualify_observations(&mut batch);
                part.read_until = Some(part.at(now_ns));
                if let Some(calibration) = &mut self.calibration {
                    batch.iter().for_each(|o| calibration.observe(o));
                }
                self.pending.extend(batch.into_iter().map(|o| (o, i)));
                self.advance();
            }
            Input::Counters(counters) => {
                part.counters = Some(counters);
                let total = self
                    .parts
                    .iter()
                    .filter_map(|p| p.counters)
                    .reduce(|a, b| a + b)
                    .unwrap_or_default();
                self.queue.push_back(Input::Counters(total));
            }
            Input::HopCounts { at_ns, counts } => {
                // Each part's places keep their cookies apart: a part's totals replace
                // only its own.
                let mut counts = HopCounts::clone(&counts);
                for (place, _) in &mut counts.hops {
                    place.netns_cookie = part.source.qualify(place.netns_cookie);
                }
                self.queue.push_back(Input::HopCounts {
                    at_ns: part.at(at_ns),
                    counts: Arc::new(counts),
                });
            }
            Input::Notice { at_ns, text } => {
                let at_ns = part.at(at_ns);
                let text = format!("{}: {text}", part.label);
                self.queue.push_back(Input::Notice { at_ns, text });
            }
        }
    }

    /// Hands on what every recording still being read has read past.
    fn advance(&mut self) {
        if !self.clocks_allow(false) {
            return;
        }
        let reading = self.parts.iter().filter(|p| !p.done);
        let until = if self.parts.iter().all(|p| p.done) {
            self.parts.iter().filter_map(|p| p.read_until).max()
        } else {
            reading.map(|p| p.read_until).min().flatten()
        };
        if let Some(until) = until
            && until > self.handed_until
        {
            self.hand_on(until);
        }
    }

    /// Whether the live clocks let what was read be handed on ([`live_clocks`]); sets them
    /// when the crossings say so.
    fn clocks_allow(&mut self, finishing: bool) -> bool {
        let Some(calibration) = &mut self.calibration else {
            return true;
        };
        match calibration.settle(finishing) {
            live_clocks::Settled::Hold => false,
            live_clocks::Settled::Release => {
                self.calibration = None;
                true
            }
            live_clocks::Settled::Set(offsets) => {
                self.calibration = None;
                self.set_clocks(&offsets);
                true
            }
        }
    }

    /// Moves each machine's times by what the crossings say its clock is off: its parts'
    /// shifts, what they have read, and what waits to be handed on.
    fn set_clocks(&mut self, offsets: &[Option<clocks::Offset>]) {
        for (machine, offset) in offsets.iter().enumerate().skip(1) {
            let Some(offset) = offset else { continue };
            let by = -offset.ns;
            for (i, part) in self.parts.iter_mut().enumerate() {
                if usize::from(part.source.0) != machine {
                    continue;
                }
                part.shift += by;
                part.read_until = part.read_until.map(|r| shifted(r, by));
                for (obs, _) in self.pending.iter_mut().filter(|(_, p)| *p == i) {
                    obs.ts_ns = shifted(obs.ts_ns, by);
                }
            }
        }
        self.clocks = offsets
            .iter()
            .enumerate()
            .skip(1)
            .map(|(machine, offset)| clocks::ClockEstimate::new(&self.machines, machine, *offset))
            .collect();
        self.clock_note = format!(
            "stitched the agents' streams ({}) from {} machines, their clocks aligned by the packets that crossed between them as the session began",
            self.parts
                .iter()
                .map(|p| p.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.machines.len()
        );
        let text = self
            .clocks
            .iter()
            .map(clocks::ClockEstimate::short)
            .collect::<Vec<_>>()
            .join(", ");
        self.queue.push_back(Input::Notice {
            at_ns: self.handed_until,
            text: format!("{CLOCKS_NOTICE}{text}"),
        });
    }

    /// Hands on, as one batch read at `until`, every pending observation up to it.
    fn hand_on(&mut self, until: u64) {
        self.pending.sort_by_key(|(o, _)| o.ts_ns);
        let split = self.pending.partition_point(|(o, _)| o.ts_ns <= until);
        let mut batch: Vec<(Observation, usize)> = Vec::with_capacity(split);
        for (obs, part) in self.pending.drain(..split) {
            // Two recordings of one kernel both saw it (each agent's programs stamp it a
            // little apart): the same event, once.
            let source = self.parts[part].source;
            let seen = batch
                .iter()
                .rev()
                .take_while(|(o, _)| obs.ts_ns - o.ts_ns <= SAME_EVENT_NS)
                .any(|(o, p)| {
                    *p != part
                        && self.parts[*p].source == source
                        && Observation { ts_ns: 0, ..*o } == Observation { ts_ns: 0, ..obs }
                });
            if seen {
                self.duplicates += 1;
            } else {
                batch.push((obs, part));
            }
        }
        self.handed_until = until;
        self.queue.push_back(Input::Observations {
            now_ns: until,
            batch: batch.into_iter().map(|(o, _)| o).collect(),
        });
    }

    pub fn read_counters(&self) -> ReadCounters {
        self.parts.iter().map(|p| p.recording.read_counters()).fold(
            ReadCounters::default(),
            |a, b| ReadCounters {
                damaged: a.damaged + b.damaged,
                damaged_bytes: a.damaged_bytes + b.damaged_bytes,
                unknown_records: a.unknown_records + b.unknown_records,
            },
        )
    }

    pub fn read_anything(&self) -> bool {
        self.parts.iter().any(|p| p.recording.read_anything)
    }

    /// Each recording's notes, said with its name, and how the clocks were put together.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![self.clock_note.clone()];
        notes.extend(self.doubts.iter().cloned());
        for part in &self.parts {
            // A live stream still open at the stop has not ended: nothing to say of it.
            if part.ended || !self.live {
                notes.extend(
                    part.recording
                        .notes()
                        .into_iter()
                        .map(|n| format!("{}: {n}", part.label)),
                );
            }
            notes.extend(health(part));
        }
        if self.duplicates > 0 {
            notes.push(format!(
                "{} observations were in more than one recording of the same kernel; each was replayed once",
                self.duplicates
            ));
        }
        notes
    }
}

/// What the user must know of one node's recording beside the others: its losses (the
/// session's counters sum them). One that stopped abruptly says so by itself (no END).
fn health(part: &Part) -> Option<String> {
    let c = part.counters?;
    (c.ringbuf_full + c.parse_failed > 0).then(|| {
        format!(
            "{}: {} events lost in its kernel, {} packets it could not parse",
            part.label, c.ringbuf_full, c.parse_failed
        )
    })
}

/// One stitched recording's health, as `--output json` shows it (`session_summary.sources`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceHealth {
    /// The node it traced, its host name, or its file name.
    pub name: String,
    /// The machine (one clock) it belongs to, as `clocks` names machines.
    pub machine: String,
    /// Its own newest totals (the session's counters are their sum).
    pub counters: SourceCounters,
    /// False when it has no END record: its recorder was killed, crashed or ran out of disk,
    /// so its node's hops after that are missing.
    pub ended_cleanly: bool,
    /// How its hooks were attached (`tcx` or `netlink`), when its session says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
}

impl SourceHealth {
    /// "cpu1 attached (tcx)", "gpu1 attached (netlink), lost: its hops after its end are
    /// missing".
    pub fn text(&self) -> String {
        let mut text = self.name.clone();
        if let Some(how) = &self.attached {
            text.push_str(&format!(" attached ({how})"));
        }
        if !self.ended_cleanly {
            text.push_str(", lost before the end: its hops after that are missing");
        }
        if self.counters.ringbuf_full > 0 {
            text.push_str(&format!(
                ", {} events lost in its kernel",
                self.counters.ringbuf_full
            ));
        }
        text
    }
}

/// Whether two recordings follow the same thing the same way.
fn same_session(a: &Session, b: &Session) -> bool {
    let sorted = |ips: &[std::net::Ipv4Addr]| {
        let mut ips = ips.to_vec();
        ips.sort_unstable();
        ips.dedup();
        ips
    };
    sorted(&a.from_ips) == sorted(&b.from_ips)
        && sorted(&a.to_ips) == sorted(&b.to_ips)
        && a.filter == b.filter
        // A journey stitched from two kernels that sampled differently would have holes.
        && a.sample_shift == b.sample_shift
}

/// Adds one kernel's drop-reason names to the merged table; returns how its values map to
/// the table's. A value keeps its number where the table has it free or under the same name.
fn translate(table: &mut Vec<(u32, String)>, pairs: Vec<(u32, String)>) -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    for (value, name) in pairs {
        let merged = if let Some((v, _)) = table.iter().find(|(_, n)| *n == name) {
            *v
        } else if table.iter().all(|(v, _)| *v != value) {
            table.push((value, name));
            value
        } else {
            let next = table
                .iter()
                .map(|(v, _)| *v + 1)
                .filter(|v| *v > TRANSLATED_REASONS)
                .max()
                .unwrap_or(TRANSLATED_REASONS);
            table.push((next, name));
            next
        };
        map.insert(value, merged);
    }
    map
}

/// Each machine's clock against the first's, from the packets that crossed between them
/// ([`clocks`]); nothing for recordings of one machine.
pub fn estimate_clocks(paths: &[impl AsRef<Path>]) -> anyhow::Result<Vec<clocks::ClockEstimate>> {
    let mut merged = Merged::open(paths)?;
    let machines = merged.machines().to_vec();
    if machines.len() < 2 {
        return Ok(Vec::new());
    }
    let mut crossings = clocks::Crossings::default();
    while let Some(input) = merged.next_input() {
        match input {
            Input::Topology { topology, .. } => crossings.topology(topology),
            Input::Observations { batch, .. } => batch.iter().for_each(|o| crossings.observe(o)),
            _ => {}
        }
    }
    Ok(crossings
        .offsets(machines.len())
        .into_iter()
        .enumerate()
        .skip(1)
        .map(|(machine, offset)| clocks::ClockEstimate::new(&machines, machine, offset))
        .collect())
}

pub mod clocks;
mod live_clocks;
#[cfg(test)]
mod tests;
