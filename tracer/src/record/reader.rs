//! Reads a recording record by record, streaming (a large file is never loaded whole).
//! Anything wrong — not a recording, a newer format, a torn or corrupted record — is an
//! error, a [`Step::Skipped`] or a [`Step::Cut`], never a panic: the reader is fuzzed
//! (`fuzz/`).
//!
//! Damage: in a version-2 file every record starts with [`SYNC`] and carries a CRC-32 over
//! its length, kind and payload. A record that fails (bad sync, impossible length, wrong
//! checksum, undecodable payload) is skipped: the reader looks for the next offset where
//! [`SYNC`] starts an intact record, reports the damaged stretch ([`Step::Skipped`]) and
//! goes on from there. When no intact record follows, the file ends there ([`Step::Cut`]).
//! A version-1 file has no sync marks, so its first damaged record ends the reading.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use thiserror::Error;

use super::{
    codec, compact, crc32,
    format::{
        ClusterRecord, FILE_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_RECORD_LEN, RECORD_HEAD_LEN,
        Record, SYNC, TopologyRecord, kind,
    },
};

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0} is not a tracer recording (no TRACEREC header)")]
    NotARecording(String),
    #[error(
        "{path} was written by a newer tracer (recording format {found}); this tracer reads formats 1 to {FORMAT_VERSION}"
    )]
    FutureVersion { path: String, found: u32 },
}

/// What the next read produced.
#[derive(Debug)]
pub enum Step {
    Record(Record),
    /// A damaged stretch of `bytes` bytes at `offset` was skipped; reading goes on after it.
    Skipped {
        offset: u64,
        bytes: u64,
        why: String,
    },
    /// The end of the file, after a clean end record or not.
    End {
        clean: bool,
    },
    /// The file stops or breaks at `offset` for good; everything before was read.
    Cut {
        offset: u64,
        why: String,
    },
}

/// Reads ahead in chunks of this size.
const CHUNK: usize = 64 * 1024;

pub struct Reader<R> {
    input: R,
    /// Bytes read from `input` and not yet consumed; `window[start..]` is at `offset`.
    window: Vec<u8>,
    start: usize,
    eof: bool,
    offset: u64,
    version: u32,
    saw_end: bool,
    done: bool,
}

impl Reader<File> {
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(file, &path.display().to_string())
    }
}

/// Reads any bytes as a recording to their end, an error or a reported cut; panics if the
/// reader does not finish. The fuzz target runs this on every input
/// (`fuzz/fuzz_targets/reader.rs`) and the unit tests on the committed corpus, so the
/// target cannot drift from the reader unnoticed. Every step consumes at least a byte (a
/// record, or a damaged stretch skipped), so `data.len() + 1` steps bound the loop.
pub fn read_to_the_end(data: &[u8]) {
    let Ok(mut reader) = Reader::new(data, "fuzz") else {
        return;
    };
    for _ in 0..=data.len() {
        match reader.next_step() {
            Step::Record(_) | Step::Skipped { .. } => {}
            Step::End { .. } | Step::Cut { .. } => return,
        }
    }
    panic!("the reader did not finish a {}-byte input", data.len());
}

/// Why a record at some offset is not an intact record.
enum Bad {
    /// Not enough bytes left for it: the file ends inside it.
    Short(String),
    Damaged(String),
    /// Reading failed (a live stream fell silent past its timeout): not damage to skip,
    /// the end of what can be read.
    Io(String),
}

impl<R: Read> Reader<R> {
    pub fn new(input: R, name: &str) -> Result<Self, RecordingError> {
        let mut reader = Self {
            input,
            window: Vec::new(),
            start: 0,
            eof: false,
            offset: 0,
            version: 0,
            saw_end: false,
            done: false,
        };
        let io_error = |source| RecordingError::Io {
            path: name.to_owned(),
            source,
        };
        let header = reader.peek(FILE_HEADER_LEN).map_err(io_error)?;
        if header.len() < FILE_HEADER_LEN || &header[..8] != MAGIC {
            return Err(RecordingError::NotARecording(name.to_owned()));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version > FORMAT_VERSION || version == 0 {
            return Err(RecordingError::FutureVersion {
                path: name.to_owned(),
                found: version,
            });
        }
        reader.version = version;
        reader.consume(FILE_HEADER_LEN);
        Ok(reader)
    }

    /// The recording format version of the file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// At least `n` bytes from the current position when the input has them (fewer at its
    /// end).
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.window.len() - self.start < n && !self.eof {
            if self.start > 0 && self.start >= self.window.len() / 2 {
                self.window.drain(..self.start);
                self.start = 0;
            }
            let have = self.window.len();
            let want = (n - (have - self.start)).max(CHUNK);
            self.window.resize(have + want, 0);
            let read = loop {
                match self.input.read(&mut self.window[have..]) {
                    Ok(read) => break read,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.window.truncate(have);
                        return Err(e);
                    }
                }
            };
            self.window.truncate(have + read);
            if read == 0 {
                self.eof = true;
            }
        }
        let end = (self.start + n).min(self.window.len());
        Ok(&self.window[self.start..end])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    pub fn next_step(&mut self) -> Step {
        if self.done {
            return Step::End {
                clean: self.saw_end,
            };
        }
        if let Err(e) = self.peek(1) {
            return self.cut(format!("read error: {e}"));
        }
        if self.window.len() == self.start {
            self.done = true;
            return Step::End {
                clean: self.saw_end,
            };
        }
        match self.record_here() {
            Ok((len, record)) => {
                self.consume(len);
                if matches!(record, Record::End(_)) {
                    self.saw_end = true;
                }
                Step::Record(record)
            }
            Err(Bad::Io(why)) => self.cut(why),
            Err(Bad::Short(why) | Bad::Damaged(why)) if self.version < 2 => self.cut(why),
            // Too short for what it claims: the file's torn end, or a damaged length field
            // with intact records after it.
            Err(Bad::Short(why)) => self.resynchronise(why, false),
            Err(Bad::Damaged(why)) => self.resynchronise(why, true),
        }
    }

    fn cut(&mut self, why: String) -> Step {
        self.done = true;
        Step::Cut {
            offset: self.offset,
            why,
        }
    }

    /// Skips to the next intact record after damage at the current offset; when none
    /// follows, the file ends there (`damaged`: say that nothing intact came after it).
    fn resynchronise(&mut self, why: String, damaged: bool) -> Step {
        let damaged_at = self.offset;
        self.consume(1);
        loop {
            let found = match self.peek(CHUNK) {
                Ok(bytes) => bytes.windows(SYNC.len()).position(|w| w == SYNC),
                Err(e) => return self.cut(format!("read error: {e}")),
            };
            match found {
                Some(at) => {
                    self.consume(at);
                    if self.record_here().is_ok() {
                        return Step::Skipped {
                            offset: damaged_at,
                            bytes: self.offset - damaged_at,
                            why,
                        };
                    }
                    self.consume(1);
                }
                None => {
                    let available = self.window.len() - self.start;
                    if self.eof {
                        // Nothing intact after the damage.
                        self.consume(available);
                        self.done = true;
                        return Step::Cut {
                            offset: damaged_at,
                            why: if damaged {
                                format!("{why}; nothing intact after it")
                            } else {
                                why
                            },
                        };
                    }
                    // Keep the last bytes: a sync mark may straddle the chunk boundary.
                    self.consume(available.saturating_sub(SYNC.len() - 1));
                }
            }
        }
    }

    /// The intact record at the current offset and its length on disk, without consuming
    /// it.
    fn record_here(&mut self) -> Result<(usize, Record), Bad> {
        let version = self.version;
        let head_len = if version >= 2 { RECORD_HEAD_LEN } else { 5 };
        let head = self
            .peek(head_len)
            .map_err(|e| Bad::Io(format!("read error: {e}")))?;
        if head.len() < head_len {
            return Err(Bad::Short(format!(
                "a record header is cut after {} of {head_len} bytes",
                head.len()
            )));
        }
        let (len_at, kind_at) = if version >= 2 {
            if head[..4] != SYNC {
                return Err(Bad::Damaged(
                    "a record does not start with the sync mark".into(),
                ));
            }
            (4, 8)
        } else {
            (0, 4)
        };
        let len_bytes = [
            head[len_at],
            head[len_at + 1],
            head[len_at + 2],
            head[len_at + 3],
        ];
        let len = u32::from_le_bytes(len_bytes);
        let kind = head[kind_at];
        if len > MAX_RECORD_LEN {
            return Err(Bad::Damaged(format!(
                "a record claims {len} bytes: corrupted"
            )));
        }
        let total = head_len + len as usize + 4;
        let bytes = self
            .peek(total)
            .map_err(|e| Bad::Io(format!("read error: {e}")))?;
        if bytes.len() < total {
            return Err(Bad::Short(format!(
                "the last record is cut ({} of {total} bytes present)",
                bytes.len()
            )));
        }
        let body = &bytes[head_len..head_len + len as usize];
        let crc_at = head_len + len as usize;
        let stored = u32::from_le_bytes([
            bytes[crc_at],
            bytes[crc_at + 1],
            bytes[crc_at + 2],
            bytes[crc_at + 3],
        ]);
        let computed = if version >= 2 {
            crc32::crc32(&[&len_bytes, &[kind], body])
        } else {
            crc32::crc32(&[&[kind], body])
        };
        if computed != stored {
            return Err(Bad::Damaged(
                "a record's checksum does not match: corrupted".to_owned(),
            ));
        }
        let record = decode(version, kind, body).ok_or_else(|| {
            Bad::Damaged(format!(
                "a record of kind {kind} does not decode: corrupted"
            ))
        })?;
        Ok((total, record))
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

fn decode(version: u32, kind: u8, body: &[u8]) -> Option<Record> {
    Some(match kind {
        kind::META => Record::Meta(Box::new(json(body)?)),
        kind::CLUSTER if version < 2 => Record::ClusterObjects(Box::new(json(body)?)),
        kind::CLUSTER => Record::Cluster(Box::new(json::<ClusterRecord>(body)?)),
        kind::NAMES => Record::Names(Box::new(json(body)?)),
        kind::TOPOLOGY => {
            let mut record: TopologyRecord = if version < 2 {
                TopologyRecord {
                    since_ns: 0,
                    topology: json(body)?,
                    more: false,
                }
            } else {
                json(body)?
            };
            record.topology.reindex();
            Record::Topology(Box::new(record))
        }
        kind::DROP_REASONS => Record::DropReasons(json(body)?),
        kind::OBSERVATIONS if version < 2 => Record::Observations {
            now_ns: None,
            batch: codec::decode_all(body)?,
        },
        kind::OBSERVATIONS => {
            let now_ns = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
            let batch = if version < 3 {
                codec::decode_all(&body[8..])?
            } else {
                compact::decode_batch_of_format(&body[8..], now_ns, version)?
            };
            Record::Observations {
                now_ns: Some(now_ns),
                batch,
            }
        }
        kind::COUNTERS => Record::Counters(json(body)?),
        kind::NOTICE => Record::Notice(json(body)?),
        kind::HOP_COUNTS => Record::HopCounts(json(body)?),
        kind::END => Record::End(json(body)?),
        other => Record::Unknown(other),
    })
}
