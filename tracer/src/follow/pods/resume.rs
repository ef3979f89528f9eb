//! The reading side of a resumable agent stream ([`crate::follow::resumable`]): when the
//! port-forward under an agent Pod's stream breaks, it is opened again and the agent asked
//! for the stream from the byte this side had (`resume N`). The recording reader above
//! reads one unbroken stream. A stream that falls silent in its middle is taken for broken
//! too (a connection can go without a reset). A reopened stream that gives nothing (the
//! agent has ended, or no longer keeps those bytes) ends the stream, as a break did
//! before. What happens is said through the merge, as notices.

use std::{
    io::{self, Read},
    net::TcpStream,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::replay::merge::{LiveStream, Socket};

/// Opens the port-forward again and asks for the stream from byte N.
pub type Reopen = Box<dyn FnMut(u64) -> io::Result<TcpStream> + Send>;

/// The socket currently under the stream, whether this side closed it, and what happened
/// to it that the session should say.
#[derive(Clone)]
struct Current {
    socket: Arc<Mutex<TcpStream>>,
    closed: Arc<AtomicBool>,
    news: Arc<Mutex<Vec<String>>>,
}

impl Current {
    fn say(&self, text: String) {
        self.news
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }
}

impl Socket for Current {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.socket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_read_timeout(timeout)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self
            .socket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shutdown(std::net::Shutdown::Both);
    }

    fn news(&self) -> Vec<String> {
        std::mem::take(&mut *self.news.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct Resuming {
    name: String,
    reading: TcpStream,
    current: Current,
    /// Bytes read so far: where a reopened stream resumes.
    consumed: u64,
    reopen: Reopen,
    /// Nothing was read since the last reopening: a reopened stream that gives nothing
    /// (its agent ended, or keeps those bytes no longer) is not reopened again.
    fresh: bool,
    /// Reopened, and nothing read since: said once the first bytes come.
    resuming: bool,
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let broke = match self.reading.read(buf) {
                Ok(0) => io::Error::new(io::ErrorKind::UnexpectedEof, "closed"),
                Ok(n) => {
                    self.consumed += n as u64;
                    self.fresh = false;
                    if std::mem::take(&mut self.resuming) {
                        self.current.say(format!(
                            "{}: its port-forward was opened again; the stream resumed at byte {}",
                            self.name,
                            self.consumed - n as u64
                        ));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Silence before the stream began, or again after reopening: for the merge
                // to judge. Silence in the middle of it: a connection that may have gone
                // without a word (a partition), reopened like one that broke.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && (self.fresh || self.consumed == 0) =>
                {
                    return Err(e);
                }
                Err(e) => e,
            };
            if self.current.closed.load(Ordering::Relaxed) || self.fresh {
                return if broke.kind() == io::ErrorKind::UnexpectedEof {
                    Ok(0)
                } else {
                    Err(broke)
                };
            }
            let timeout = self.reading.read_timeout().ok().flatten();
            match (self.reopen)(self.consumed) {
                Ok(stream) => {
                    stream.set_read_timeout(timeout)?;
                    *self
                        .current
                        .socket
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = stream.try_clone()?;
                    self.reading = stream;
                    self.fresh = true;
                    self.resuming = true;
                    // Closed while it was being reopened: the new one goes too.
                    if self.current.closed.load(Ordering::Relaxed) {
                        let _ = self.reading.shutdown(std::net::Shutdown::Both);
                        return Ok(0);
                    }
                }
                Err(e) => {
                    self.current.say(format!(
                        "{}: its port-forward broke ({broke}) and could not be opened again: {e}",
                        self.name
                    ));
                    return Ok(0);
                }
            }
        }
    }
}

/// A live stream that reopens itself through `reopen` when it breaks.
pub fn resuming(name: String, stream: TcpStream, reopen: Reopen) -> io::Result<LiveStream> {
    let current = Current {
        socket: Arc::new(Mutex::new(stream.try_clone()?)),
        closed: Arc::new(AtomicBool::new(false)),
        news: Arc::new(Mutex::new(Vec::new())),
    };
    Ok(LiveStream {
        name: name.clone(),
        socket: Box::new(current.clone()),
        reader: Box::new(Resuming {
            name,
            reading: stream,
            current,
            consumed: 0,
            reopen,
            fresh: false,
            resuming: false,
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::{io::Write, net::TcpListener};

    use super::*;

    #[test]
    fn a_broken_stream_is_reopened_from_the_byte_it_had() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = TcpStream::connect(address).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"hello ").unwrap();
        drop(server);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let reopen: Reopen = {
            let asked = asked.clone();
            Box::new(move |from| {
                asked.lock().unwrap().push(from);
                let again = TcpStream::connect(address)?;
                let (mut server, _) = listener.accept()?;
                if from == 6 {
                    server.write_all(b"world")?;
                }
                Ok(again)
            })
        };
        let mut live = resuming("node cpu1".into(), client, reopen).unwrap();
        let mut text = String::new();
        live.reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
        // Once at byte 6; then a reopening that gave nothing ends it.
        assert_eq!(*asked.lock().unwrap(), vec![6, 11]);
    }
}
