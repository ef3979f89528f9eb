//! Writes a recording: a tap on the pipeline's inputs (`pipeline`), so a replay feeds the
//! correlator what the live session fed it.
//!
//! Two halves. [`Recorder::record`] runs on the session's thread: it frames each input as
//! records (into `bytes` buffers) and queues them, never waiting for the disk with
//! observations (a full queue is counted, `unrecorded_batches`) and waiting with context
//! (names matter more than a moment's delay). A writer thread writes and flushes each
//! record whole, so SIGKILL loses at most what was queued.
//!
//! What it writes for names: not the whole cluster (a 50,000-Pod cluster would make every
//! change a copy of all of it) but what replay needs to name the session's packets as the
//! live session named them — every node, every Service with a NodePort, the followed
//! targets (with a Service's endpoints), and the rows that name each address the packets
//! carried, added (NAMES) before the first observation that carries it. When the cluster
//! changes, the new version is written with the rows of every address named so far.
//!
//! Nothing the reader refuses is written: a record larger than [`MAX_RECORD_LEN`] is split
//! (names into several records, topology by namespace), and what cannot be split is left
//! out with a NOTICE saying so.
//!
//! A write error (disk full, I/O error) stops the recording; [`Recorder::error`] says why
//! at once and [`Recorder::finish`] how much was saved.

use std::{
    collections::HashSet,
    fs::File,
    io::{self, BufWriter, Write},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Serialize;

use super::{
    compact, crc32,
    format::{
        ClusterRecord, End, FILE_HEADER_LEN, FORMAT_VERSION, HopCountsRecord, MAGIC,
        MAX_RECORD_LEN, Meta, NoticeRecord, OBSERVATIONS_PER_RECORD, SYNC, TopologyRecord, kind,
    },
};
use crate::{
    journey::{assemble::CLOSE_AFTER_NS, observation::Observation},
    k8s::{ClusterModel, model::ModelRows},
    pipeline::{Input, Session},
    topology::Topology,
};

/// What goes to the writer thread: framed records and the observations they hold.
struct Chunk {
    bytes: Bytes,
    observations: u64,
    finish: bool,
}

#[derive(Debug, Default)]
struct Written {
    observations: u64,
    bytes: u64,
    error: Option<String>,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingReport {
    pub path: PathBuf,
    /// Observations safely written.
    pub saved: u64,
    /// Observations handed to the recorder.
    pub offered: u64,
    pub bytes: u64,
    /// Why writing stopped, if it did.
    pub error: Option<String>,
}

impl RecordingReport {
    /// One sentence for the summary.
    pub fn describe(&self) -> String {
        match &self.error {
            None if self.saved == self.offered => format!(
                "recorded {} observations to {} ({} bytes)",
                self.saved,
                self.path.display(),
                self.bytes
            ),
            None => format!(
                "recorded {} of {} observations to {} ({} not recorded: the disk did not keep up)",
                self.saved,
                self.offered,
                self.path.display(),
                self.offered - self.saved
            ),
            Some(error) => format!(
                "the recording FAILED: {} of {} observations saved to {} before {error}; the {} after that were not recorded (the file replays up to there)",
                self.saved,
                self.offered,
                self.path.display(),
                self.offered.saturating_sub(self.saved)
            ),
        }
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Who made the recording, for its META record.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub tracer_version: String,
    pub created_at: String,
    pub hostname: String,
    pub command: Vec<String>,
}

impl Provenance {
    /// This process, now.
    pub fn here() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            tracer_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: crate::clock::rfc3339(i128::try_from(now).unwrap_or(0)),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            command: std::env::args().collect(),
        }
    }
}

pub struct Recorder {
    path: PathBuf,
    provenance: Provenance,
    queue: SyncSender<Chunk>,
    thread: Option<JoinHandle<()>>,
    written: Arc<Mutex<Written>>,
    /// The names in use, when they hold from, and the addresses whose rows are in the
    /// file for this version.
    names: Option<(u64, Arc<ClusterModel>)>,
    named: HashSet<Ipv4Addr>,
    followed: Vec<Ipv4Addr>,
    offered: u64,
    unrecorded_batches: u64,
    /// The largest record written (tests split at a smaller limit).
    limit: usize,
    /// Offline writers (tools, benchmarks) wait for the disk instead of counting batches
    /// as unrecorded.
    wait_for_disk: bool,
    /// The `now_ns` of the previous batch, recorded or not.
    previous_now_ns: u64,
    /// From when on every recorded observation's packet is closed (the newest one's time
    /// plus [`CLOSE_AFTER_NS`]).
    all_closed_at_ns: u64,
    /// A live reader's stream: write an empty read at least this often.
    heartbeat_ns: Option<u64>,
    /// The read time of the last batch written.
    written_now_ns: u64,
}

/// Where a recording goes: a file, or an agent's stream to the `follow` that reads it.
pub trait Output: Write + Send + 'static {
    /// Makes what was written last (the END record) durable, or delivered.
    fn persist(&mut self) -> io::Result<()>;
}

impl Output for File {
    fn persist(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

impl Output for std::net::TcpStream {
    fn persist(&mut self) -> io::Result<()> {
        self.flush()?;
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Recorder {
    /// Starts a recording in `file` (created by the caller, mode 0600: recordings name a
    /// cluster's insides) and its writer thread. `path` is for messages.
    pub fn start(file: impl Output, path: &Path, provenance: Provenance) -> io::Result<Self> {
        Self::with_limit(Box::new(file), path, provenance, MAX_RECORD_LEN as usize)
    }

    /// Starts a recording streamed to a reader that is live (`tracer agent --listen`): an
    /// empty read is written at least every `heartbeat_ns` too, so the reader knows how far
    /// this source has read even while no packet passes.
    pub fn streaming(
        out: impl Output,
        name: &Path,
        provenance: Provenance,
        heartbeat_ns: u64,
    ) -> io::Result<Self> {
        let mut recorder = Self::start(out, name, provenance)?;
        recorder.heartbeat_ns = Some(heartbeat_ns);
        Ok(recorder)
    }

    fn with_limit(
        file: Box<dyn Output>,
        path: &Path,
        provenance: Provenance,
        limit: usize,
    ) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut header = [0u8; FILE_HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        let (queue, inbox) = mpsc::sync_channel::<Chunk>(1024);
        let written = Arc::new(Mutex::new(Written::default()));
        let thread_written = Arc::clone(&written);
        let thread = thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_chunks(&inbox, out, &thread_written))?;
        Ok(Self {
            path: path.to_path_buf(),
            provenance,
            queue,
            thread: Some(thread),
            written,
            names: None,
            named: HashSet::new(),
            followed: Vec::new(),
            offered: 0,
            unrecorded_batches: 0,
            limit,
            wait_for_disk: false,
            previous_now_ns: 0,
            all_closed_at_ns: 0,
            heartbeat_ns: None,
            written_now_ns: 0,
        })
    }

    /// A recorder for offline writers (tools, benchmarks): it waits for the disk rather
    /// than leave observations out.
    pub fn offline(file: File, path: &Path, provenance: Provenance) -> io::Result<Self> {
        let mut recorder = Self::start(file, path, provenance)?;
        recorder.wait_for_disk = true;
        Ok(recorder)
    }

    /// Records one input of the session, before the correlator takes it.
    pub fn record(&mut self, input: &Input) {
        if self.error().is_some() {
            if let Input::Observations { batch, .. } = input {
                self.offered += batch.len() as u64;
            }
            return;
        }
        match input {
            Input::Session(session) => self.session(session),
            Input::Cluster { since_ns, names } => self.cluster(*since_ns, names),
            Input::Topology { since_ns, topology } => self.topology(*since_ns, topology),
            Input::DropReasons(reasons) => {
                let pairs = reasons.to_pairs();
                self.context(json_record(kind::DROP_REASONS, &pairs));
            }
            Input::Observations { now_ns, batch } => self.observations(*now_ns, batch),
            Input::Counters(counters) => {
                let record = json_record(kind::COUNTERS, counters);
                self.observations_chunk(record, 0);
            }
            Input::HopCounts { at_ns, counts } => {
                let record = HopCountsRecord {
                    at_ns: *at_ns,
                    counts: (**counts).clone(),
                };
                // Only the places that changed: each is needed, and the last is what
                // replay's flows end with, so it waits for the disk like context.
                self.context(json_record(kind::HOP_COUNTS, &record));
            }
            Input::Notice { at_ns, text } => {
                let notice = NoticeRecord {
                    at_ns: *at_ns,
                    text: text.clone(),
                };
                self.context(json_record(kind::NOTICE, &notice));
            }
        }
    }

    /// Observation batches the writer could not keep up with so far.
    pub fn unrecorded_batches(&self) -> u64 {
        self.unrecorded_batches
    }

    /// Why the recording stopped, if it did.
    pub fn error(&self) -> Option<String> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }

    /// Writes the end record, waits for the file to be on disk, and says how it went.
    pub fn finish(mut self) -> RecordingReport {
        let end = End {
            observations: self.offered,
        };
        let _ = self.queue.send(Chunk {
            bytes: json_record(kind::END, &end),
            observations: 0,
            finish: true,
        });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        RecordingReport {
            path: self.path.clone(),
            saved: written.observations,
            offered: self.offered,
            bytes: written.bytes,
            error: written.error.clone(),
        }
    }

    fn session(&mut self, session: &Session) {
        self.followed = session
            .from_ips
            .iter()
            .chain(&session.to_ips)
            .copied()
            .collect();
        let meta = Meta {
            tracer_version: self.provenance.tracer_version.clone(),
            created_at: self.provenance.created_at.clone(),
            hostname: self.provenance.hostname.clone(),
            command: self.provenance.command.clone(),
            snap_len: 0,
            session: session.clone(),
        };
        self.context(json_record(kind::META, &meta));
    }

    /// A new version of the names: the base rows and those of every address named so far.
    fn cluster(&mut self, since_ns: u64, names: &Arc<ClusterModel>) {
        let mut rows = base_rows(names, &self.followed);
        for ip in &self.named {
            names.rows_naming(*ip, &mut rows);
        }
        self.names = Some((since_ns, Arc::clone(names)));
        let mut chunks = split_rows(rows, self.limit).into_iter();
        let first = chunks.next().unwrap_or_default();
        let record = ClusterRecord {
            since_ns,
            rows: first,
        };
        self.sized_context(kind::CLUSTER, &record);
        for rest in chunks {
            self.sized_context(kind::NAMES, &rest);
        }
    }

    /// Names for the addresses of `batch` not named yet in this version.
    fn name_addresses(&mut self, batch: &[Observation]) {
        let Some((_, names)) = &self.names else {
            return;
        };
        let names = Arc::clone(names);
        let mut rows = ModelRows::default();
        for obs in batch {
            let outer = obs.outer.map(|o| [o.src, o.dst]);
            for ip in [obs.tuple.src, obs.tuple.dst]
                .into_iter()
                .chain(outer.into_iter().flatten())
            {
                if self.named.insert(ip) {
                    names.rows_naming(ip, &mut rows);
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        for chunk in split_rows(rows, self.limit) {
            self.sized_context(kind::NAMES, &chunk);
        }
    }

    fn topology(&mut self, since_ns: u64, topology: &Topology) {
        let parts = split_topology(topology, self.limit);
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let record = TopologyRecord {
                since_ns,
                topology: part,
                more: i + 1 < count,
            };
            self.sized_context(kind::TOPOLOGY, &record);
        }
    }

    fn observations(&mut self, now_ns: u64, batch: &[Observation]) {
        self.offered += batch.len() as u64;
        // A read that found nothing still closes the packets that went quiet, and which
        // reads close which packets decides the order journeys come out in: replay must
        // close them at the same moments. Empty reads are kept while a recorded packet may
        // still be open, and left out once every one is closed.
        let may_close = self.previous_now_ns < self.all_closed_at_ns;
        let heartbeat = self
            .heartbeat_ns
            .is_some_and(|every| now_ns.saturating_sub(self.written_now_ns) >= every);
        self.previous_now_ns = now_ns;
        if batch.is_empty() {
            if may_close || heartbeat {
                self.written_now_ns = now_ns;
                let mut buf = BytesMut::new();
                frame_into(&mut buf, kind::OBSERVATIONS, &now_ns.to_le_bytes());
                self.observations_chunk(buf.freeze(), 0);
            }
            return;
        }
        self.written_now_ns = now_ns;
        let newest = batch.iter().map(|o| o.ts_ns).max().unwrap_or(0);
        self.all_closed_at_ns = self
            .all_closed_at_ns
            .max(newest.saturating_add(CLOSE_AFTER_NS));
        self.name_addresses(batch);
        let mut buf = BytesMut::new();
        let mut count = 0;
        // One batch may take several records; they share its `now_ns`, and replay joins
        // them back into one batch.
        for chunk in batch.chunks(OBSERVATIONS_PER_RECORD) {
            let mut payload = Vec::with_capacity(8 + chunk.len() * 16);
            payload.extend_from_slice(&now_ns.to_le_bytes());
            compact::encode_batch(chunk, now_ns, &mut payload);
            frame_into(&mut buf, kind::OBSERVATIONS, &payload);
            count += chunk.len() as u64;
        }
        self.observations_chunk(buf.freeze(), count);
    }

    /// Queues observations without waiting: a live session never waits for the disk.
    fn observations_chunk(&mut self, bytes: Bytes, observations: u64) {
        if self.wait_for_disk {
            let _ = self.queue.send(Chunk {
                bytes,
                observations,
                finish: false,
            });
            return;
        }
        match self.queue.try_send(Chunk {
            bytes,
            observations,
            finish: false,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.unrecorded_batches += 1,
            // The writer stopped: `error` says why.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Queues context, waiting for room.
    fn context(&mut self, bytes: Bytes) {
        let _ = self.queue.send(Chunk {
            bytes,
            observations: 0,
            finish: false,
        });
    }

    /// Context that may be too large for one record: left out, with a notice, rather than
    /// written where the reader would refuse it.
    fn sized_context(&mut self, kind: u8, value: &impl Serialize) {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        if payload.len() > self.limit {
            let notice = NoticeRecord {
                at_ns: crate::clock::monotonic_ns(),
                text: format!(
                    "context of {} bytes (record kind {kind}) was too large to record; names after this point may be missing in replay",
                    payload.len()
                ),
            };
            self.context(json_record(kind::NOTICE, &notice));
            return;
        }
        let mut buf = BytesMut::with_capacity(payload.len() + 16);
        frame_into(&mut buf, kind, &payload);
        self.context(buf.freeze());
    }
}

/// The rows every version of the names carries: nodes, NodePort Services, and the followed
/// addresses' rows.
fn base_rows(names: &ClusterModel, followed: &[Ipv4Addr]) -> ModelRows {
    let mut rows = ModelRows {
        nodes: names.nodes().cloned().collect(),
        ..ModelRows::default()
    };
    for service in names.services() {
        if service.ports.iter().any(|p| p.node_port.is_some()) {
            names.service_rows(service, &mut rows);
        }
    }
    for ip in followed {
        names.rows_naming(*ip, &mut rows);
    }
    rows
}

/// Rows in pieces whose JSON stays under `limit` bytes (estimated from the whole).
fn split_rows(rows: ModelRows, limit: usize) -> Vec<ModelRows> {
    let size = serde_json::to_vec(&rows).map_or(0, |v| v.len());
    let pieces = size / (limit / 2).max(1) + 1;
    if pieces <= 1 {
        return vec![rows];
    }
    let per = |n: usize| n.div_ceil(pieces).max(1);
    let (pods, services, nodes) = (
        per(rows.pods.len()),
        per(rows.services.len()),
        per(rows.nodes.len()),
    );
    let mut out: Vec<ModelRows> = (0..pieces).map(|_| ModelRows::default()).collect();
    for (i, row) in rows.pods.into_iter().enumerate() {
        out[i / pods].pods.push(row);
    }
    for (i, row) in rows.services.into_iter().enumerate() {
        out[i / services].services.push(row);
    }
    for (i, row) in rows.nodes.into_iter().enumerate() {
        out[i / nodes].nodes.push(row);
    }
    out.retain(|r| !r.is_empty());
    if out.is_empty() {
        out.push(ModelRows::default());
    }
    out
}

/// A topology in pieces (by namespace) whose JSON stays under `limit` bytes.
fn split_topology(topology: &Topology, limit: usize) -> Vec<Topology> {
    let mut parts = Vec::new();
    let mut current = Topology::default();
    let mut size = 0;
    for host in &topology.hosts {
        let host_size = serde_json::to_vec(host).map_or(0, |v| v.len()) + 1;
        if size + host_size > limit / 2 && !current.hosts.is_empty() {
            parts.push(std::mem::take(&mut current));
            size = 0;
        }
        current.hosts.push(host.clone());
        size += host_size;
    }
    parts.push(current);
    parts
}

/// `sync | length | kind | payload | crc32(length, kind, payload)`.
fn frame_into(buf: &mut BytesMut, kind: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    buf.reserve(payload.len() + 13);
    buf.put_slice(&SYNC);
    buf.put_slice(&len);
    buf.put_u8(kind);
    buf.put_slice(payload);
    buf.put_slice(&crc32::crc32(&[&len, &[kind], payload]).to_le_bytes());
}

fn json_record(kind: u8, value: &impl Serialize) -> Bytes {
    let payload = serde_json::to_vec(value).unwrap_or_default();
    let mut buf = BytesMut::with_capacity(payload.len() + 16);
    frame_into(&mut buf, kind, &payload);
    buf.freeze()
}

/// The writer thread: writes and flushes each chunk; the first error stops it.
fn write_chunks(
    inbox: &mpsc::Receiver<Chunk>,
    mut out: BufWriter<Box<dyn Output>>,
    written: &Mutex<Written>,
) {
    let result = (|| -> io::Result<()> {
        for chunk in inbox {
            out.write_all(&chunk.bytes)?;
            out.flush()?;
            {
                let mut w = written.lock().unwrap_or_else(|e| e.into_inner());
                w.observations += chunk.observations;
                w.bytes += chunk.bytes.len() as u64;
            }
            if chunk.finish {
                out.flush()?;
                return out.get_mut().persist();
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        written.lock().unwrap_or_else(|e| e.into_inner()).error = Some(e.to_string());
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn recorder_with_limit(file: File, path: &Path, limit: usize) -> Recorder {
        let provenance = Provenance {
            tracer_version: "test".into(),
            created_at: "2026-11-29T00:00:00.000000Z".into(),
            hostname: "test".into(),
            command: vec!["tracer".into()],
        };
        Recorder::with_limit(Box::new(file), path, provenance, limit).expect("start recorder")
    }
}
