//! Reads a recording record by record, streaming (a large file is never loaded whole).
//! Anything wrong — not a recording, a newer format, a torn or corrupted record — is an
//! error or a [`Step::Cut`], never a panic: the reader is fuzzed (`fuzz/`).

use std::{
    fs::File,
    io::{self, BufReader, Read},
    path::Path,
};

use thiserror::Error;

use super::{
    codec, crc32,
    format::{FILE_HEADER_LEN, FORMAT_VERSION, MAGIC, MAX_RECORD_LEN, Record, kind},
};

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0} is not a tracer recording (no TRACEREC header)")]
    NotARecording(String),
    #[error(
        "{path} was written by a newer tracer (recording format {found}); this tracer reads format {FORMAT_VERSION}"
    )]
    FutureVersion { path: String, found: u32 },
}

/// What the next read produced.
#[derive(Debug)]
pub enum Step {
    Record(Record),
    /// The end of the file, after a clean end record or not.
    End {
        clean: bool,
    },
    /// The file stops or breaks here; everything before was complete.
    Cut {
        offset: u64,
        why: String,
    },
}

pub struct Reader<R> {
    input: R,
    offset: u64,
    saw_end: bool,
    done: bool,
}

impl Reader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(
            BufReader::with_capacity(1 << 20, file),
            &path.display().to_string(),
        )
    }
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R, name: &str) -> Result<Self, RecordingError> {
        let mut header = [0u8; FILE_HEADER_LEN];
        if read_full(&mut input, &mut header).map_err(|source| RecordingError::Io {
            path: name.to_owned(),
            source,
        })? < FILE_HEADER_LEN
            || &header[..8] != MAGIC
        {
            return Err(RecordingError::NotARecording(name.to_owned()));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version > FORMAT_VERSION || version == 0 {
            return Err(RecordingError::FutureVersion {
                path: name.to_owned(),
                found: version,
            });
        }
        Ok(Self {
            input,
            offset: FILE_HEADER_LEN as u64,
            saw_end: false,
            done: false,
        })
    }

    pub fn next_step(&mut self) -> Step {
        if self.done {
            return Step::End {
                clean: self.saw_end,
            };
        }
        let start = self.offset;
        let cut = |this: &mut Self, why: String| {
            this.done = true;
            Step::Cut { offset: start, why }
        };
        let mut head = [0u8; 5];
        match read_full(&mut self.input, &mut head) {
            Ok(0) => {
                self.done = true;
                return Step::End {
                    clean: self.saw_end,
                };
            }
            Ok(5) => {}
            Ok(n) => return cut(self, format!("a record header is cut after {n} of 5 bytes")),
            Err(e) => return cut(self, format!("read error: {e}")),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let kind = head[4];
        if len > MAX_RECORD_LEN {
            return cut(self, format!("a record claims {len} bytes: corrupted"));
        }
        let mut payload = vec![0u8; len as usize + 4];
        match read_full(&mut self.input, &mut payload) {
            Ok(n) if n == payload.len() => {}
            Ok(n) => {
                return cut(
                    self,
                    format!(
                        "the last record is cut ({} of {} bytes present)",
                        n + 5,
                        payload.len() + 5
                    ),
                );
            }
            Err(e) => return cut(self, format!("read error: {e}")),
        }
        let crc_at = len as usize;
        let stored = u32::from_le_bytes([
            payload[crc_at],
            payload[crc_at + 1],
            payload[crc_at + 2],
            payload[crc_at + 3],
        ]);
        let body = &payload[..crc_at];
        if crc32::crc32(&[&[kind], body]) != stored {
            return cut(
                self,
                "a record's checksum does not match: corrupted".to_owned(),
            );
        }
        self.offset += 5 + u64::from(len) + 4;
        match decode(kind, body) {
            Some(record) => {
                if matches!(record, Record::End(_)) {
                    self.saw_end = true;
                }
                Step::Record(record)
            }
            None => cut(
                self,
                format!("a record of kind {kind} does not decode: corrupted"),
            ),
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
}

fn decode(kind: u8, body: &[u8]) -> Option<Record> {
    Some(match kind {
        kind::META => Record::Meta(Box::new(serde_json::from_slice(body).ok()?)),
        kind::CLUSTER => Record::Cluster(Box::new(serde_json::from_slice(body).ok()?)),
        kind::TOPOLOGY => {
            let mut topology: crate::topology::Topology = serde_json::from_slice(body).ok()?;
            topology.reindex();
            Record::Topology(Box::new(topology))
        }
        kind::DROP_REASONS => Record::DropReasons(serde_json::from_slice(body).ok()?),
        kind::OBSERVATIONS => Record::Observations(codec::decode_all(body)?),
        kind::LOSS => Record::Loss(serde_json::from_slice(body).ok()?),
        kind::END => Record::End(serde_json::from_slice(body).ok()?),
        other => Record::Unknown(other),
    })
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
