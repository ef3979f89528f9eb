//! The reading side of a resumable agent stream ([`crate::follow::resumable`]): when the
//! port-forward under an agent Pod's stream breaks, it is opened again and the agent asked
//! for the stream from the byte this side had (`resume N`). The recording reader above
//! reads one unbroken stream. A reopened stream that gives nothing (the agent has ended,
//! or no longer keeps those bytes) ends the stream, as a break did before.

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

/// The socket currently under the stream, and whether this side closed it.
#[derive(Clone)]
struct Current {
    socket: Arc<Mutex<TcpStream>>,
    closed: Arc<AtomicBool>,
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
}

struct Resuming {
    name: String,
    reading: TcpStream,
    current: Current,
    /// Bytes read so far: where a reopened stream resumes.
    consumed: u64,
    reopen: Reopen,
    /// Nothing was read since the last reopening.
    fresh: bool,
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let broke = match self.reading.read(buf) {
                Ok(0) => None,
                Ok(n) => {
                    self.consumed += n as u64;
                    self.fresh = false;
                    return Ok(n);
                }
                // Silence is for the merge to judge.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Some(e),
            };
            if self.current.closed.load(Ordering::Relaxed) || self.fresh {
                return broke.map_or(Ok(0), Err);
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
                    eprintln!(
                        "  {}: its port-forward broke; opened again, resuming at byte {}",
                        self.name, self.consumed
                    );
                }
                Err(e) => {
                    eprintln!(
                        "  {}: its port-forward broke and could not be opened again: {e}",
                        self.name
                    );
                    return broke.map_or(Ok(0), Err);
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
