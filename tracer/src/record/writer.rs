//! Writes a recording on a dedicated thread fed by a bounded queue, so the live view never
//! waits for the disk. Each record is written whole and flushed: SIGKILL loses at most the
//! batch in flight. A write error (disk full, unwritable path) stops the recording and is
//! reported once through [`Recorder::error`]; the session goes on.

use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
    sync::{
        Arc, Mutex,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
};

use serde::Serialize;

use super::{
    codec, crc32,
    format::{FILE_HEADER_LEN, FORMAT_VERSION, Loss, MAGIC, Meta, kind},
};
use crate::{journey::observation::Observation, k8s::ClusterObjects, topology::Topology};

enum Message {
    Observations(Vec<Observation>),
    /// The cluster and namespaces changed (Pods replaced): CLUSTER and TOPOLOGY again.
    Context(Box<ClusterObjects>, Arc<Topology>),
    Loss(Loss),
    Finish,
}

pub struct Recorder {
    queue: SyncSender<Message>,
    thread: Option<JoinHandle<()>>,
    error: Arc<Mutex<Option<String>>>,
    dropped_batches: u64,
}

fn frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("record too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&[kind])?;
    out.write_all(payload)?;
    out.write_all(&crc32::crc32(&[&[kind], payload]).to_le_bytes())
}

fn json_record(out: &mut impl Write, kind: u8, value: &impl Serialize) -> io::Result<()> {
    let payload = serde_json::to_vec(value).map_err(io::Error::other)?;
    frame(out, kind, &payload)
}

impl Recorder {
    /// Creates `path` (mode 0600: recordings name a cluster's insides), writes the header
    /// and the session's context, and starts the writer thread.
    pub fn create(
        path: &Path,
        meta: &Meta,
        cluster: &ClusterObjects,
        topology: &Topology,
        drop_reasons: &[(u32, String)],
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // An existing file keeps its old mode on open: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = BufWriter::new(file);
        let mut header = [0u8; FILE_HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&header)?;
        json_record(&mut out, kind::META, meta)?;
        json_record(&mut out, kind::CLUSTER, cluster)?;
        json_record(&mut out, kind::TOPOLOGY, topology)?;
        json_record(&mut out, kind::DROP_REASONS, &drop_reasons)?;
        out.flush()?;

        let (queue, inbox) = mpsc::sync_channel::<Message>(256);
        let error = Arc::new(Mutex::new(None));
        let thread_error = Arc::clone(&error);
        let thread = thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let mut written = 0u64;
                let mut buf = Vec::new();
                let result = (|| -> io::Result<()> {
                    for message in inbox {
                        match message {
                            Message::Observations(batch) => {
                                buf.clear();
                                for obs in &batch {
                                    codec::encode(obs, &mut buf);
                                }
                                frame(&mut out, kind::OBSERVATIONS, &buf)?;
                                written += batch.len() as u64;
                            }
                            Message::Loss(loss) => json_record(&mut out, kind::LOSS, &loss)?,
                            Message::Context(cluster, topology) => {
                                json_record(&mut out, kind::CLUSTER, &cluster)?;
                                json_record(&mut out, kind::TOPOLOGY, &*topology)?;
                            }
                            Message::Finish => {
                                json_record(
                                    &mut out,
                                    kind::END,
                                    &super::format::End {
                                        observations: written,
                                    },
                                )?;
                                out.flush()?;
                                return out.get_ref().sync_all();
                            }
                        }
                        out.flush()?;
                    }
                    Ok(())
                })();
                if let Err(e) = result
                    && let Ok(mut slot) = thread_error.lock()
                {
                    *slot = Some(e.to_string());
                }
            })?;
        Ok(Self {
            queue,
            thread: Some(thread),
            error,
            dropped_batches: 0,
        })
    }

    /// Queues observations; never blocks. Returns false once the recording has failed.
    pub fn observations(&mut self, batch: Vec<Observation>) -> bool {
        if batch.is_empty() {
            return self.error().is_none();
        }
        match self.queue.try_send(Message::Observations(batch)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped_batches += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues observations, waiting for room: for offline writers (tools, benchmarks), never
    /// for a live session.
    pub fn observations_blocking(&mut self, batch: Vec<Observation>) -> bool {
        self.queue.send(Message::Observations(batch)).is_ok()
    }

    /// Records the cluster and namespaces again after they changed; what follows in the
    /// file is named by them. Waits for room in the queue (changes are rare, and names
    /// matter more than a moment's delay).
    pub fn context(&mut self, cluster: ClusterObjects, topology: Arc<Topology>) {
        let _ = self
            .queue
            .send(Message::Context(Box::new(cluster), topology));
    }

    pub fn loss(&mut self, ringbuf_full: u64, parse_failed: u64) {
        let _ = self.queue.try_send(Message::Loss(Loss {
            ringbuf_full,
            parse_failed,
            recorder_dropped: self.dropped_batches,
        }));
    }

    /// Why the recording stopped, if it did.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes the end record and waits for the file to be on disk.
    pub fn finish(mut self) -> Result<(), String> {
        let _ = self.queue.send(Message::Finish);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.error().map_or(Ok(()), Err)
    }
}
