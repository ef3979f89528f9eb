//! An agent's stream that outlives a broken connection (`tracer agent --listen ADDR
//! --resume-within D`): what was sent is kept (the last [`KEPT`] bytes), and when the
//! reader's connection breaks — an API server restarted under its port-forward, a proxy
//! dropped it — the session goes on while the agent waits up to D for the reader to come
//! back. The reader connects again and sends `resume TOKEN N\n`, N being how many bytes of
//! the stream it had and TOKEN the session's secret ([`RESUME_TOKEN_ENV`], from the Pod's
//! environment: on a node's loopback, any process could connect); the agent sends the
//! rest from there, and the recording reader on the other side never notices. A reader
//! may also come back before the agent noticed the break (a connection that went silent
//! without a reset): it replaces the old connection. A reader that asks for bytes no
//! longer kept, or without the token, is refused; no reader within D ends the session, as
//! a reader that goes does without this.

use std::{
    collections::VecDeque,
    io::{self, BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use crate::record::writer::Output;

/// How much of the stream is kept for a reader that comes back (about half a minute of a
/// busy node's stream).
const KEPT: usize = 32 * 1024 * 1024;

/// The environment variable that holds a session's resume token.
pub const RESUME_TOKEN_ENV: &str = "TRACER_RESUME_TOKEN";
/// How long a reader that came back may take to say where it resumes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A reader that stops reading this long is taken for gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Resumable {
    listener: TcpListener,
    stream: Option<TcpStream>,
    /// The last bytes sent, from stream offset `kept_from`.
    kept: VecDeque<u8>,
    kept_from: u64,
    /// Bytes of the stream so far.
    sent: u64,
    /// When the reader's connection broke.
    lost_at: Option<Instant>,
    window: Duration,
    token: Option<String>,
}

impl Resumable {
    pub fn new(
        stream: TcpStream,
        listener: TcpListener,
        window: Duration,
        token: Option<String>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Self {
            listener,
            stream: Some(stream),
            kept: VecDeque::new(),
            kept_from: 0,
            sent: 0,
            lost_at: None,
            window,
            token,
        })
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.sent += bytes.len() as u64;
        // Room is made first: the buffer never grows past what is kept.
        let bytes = &bytes[bytes.len().saturating_sub(KEPT)..];
        let over = (self.kept.len() + bytes.len()).saturating_sub(KEPT);
        self.kept.drain(..over);
        if self.kept.capacity() < KEPT {
            self.kept.reserve_exact(KEPT - self.kept.len());
        }
        self.kept.extend(bytes);
        self.kept_from = self.sent - self.kept.len() as u64;
    }

    fn lose(&mut self, why: &io::Error) {
        self.stream = None;
        self.lost_at = Some(Instant::now());
        eprintln!(
            "  the reader's connection broke ({why}): waiting {} s for it to come back",
            self.window.as_secs()
        );
    }

    /// Takes a reader that came back (also one that came back before its old connection
    /// was found broken); says whether one did, or that none came in time.
    fn take_returning_reader(&mut self) -> io::Result<bool> {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = self.resume(stream) {
                        eprintln!("  a reader from {peer} could not resume: {e}");
                        continue;
                    }
                    eprintln!("  the reader is back ({peer}): resumed");
                    self.lost_at = None;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let Some(lost_at) = self.lost_at else {
            return Ok(false);
        };
        if lost_at.elapsed() >= self.window {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!(
                    "the reader did not come back within {} s",
                    self.window.as_secs()
                ),
            ));
        }
        Ok(false)
    }

    /// Reads `resume N` and sends the stream from byte N.
    fn resume(&mut self, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut line = String::new();
        BufReader::new(io::Read::take(&stream, 64)).read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let asked = match (&self.token, words.next(), words.next(), words.next()) {
            (None, Some("resume"), Some(n), None) => n.parse().ok(),
            (Some(token), Some("resume"), Some(given), Some(n)) if given == token => n.parse().ok(),
            _ => None,
        };
        let from: u64 = asked.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "not `resume TOKEN N` with this session's token",
            )
        })?;
        if from < self.kept_from || from > self.sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "byte {from} is not kept (bytes {} to {} are)",
                    self.kept_from, self.sent
                ),
            ));
        }
        let skip = usize::try_from(from - self.kept_from).unwrap_or(usize::MAX);
        let (a, b) = self.kept.as_slices();
        let mut writer = &stream;
        if skip < a.len() {
            writer.write_all(&a[skip..])?;
            writer.write_all(b)?;
        } else {
            writer.write_all(&b[skip - a.len()..])?;
        }
        self.stream = Some(stream);
        Ok(())
    }
}

impl Write for Resumable {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let away = self.stream.is_none();
        self.keep(buf);
        // A reader that came back got these bytes with the rest of what was kept.
        if self.take_returning_reader()? || away {
            return Ok(buf.len());
        }
        if let Some(stream) = &mut self.stream
            && let Err(e) = stream.write_all(buf)
        {
            self.lose(&e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(stream) = &mut self.stream
            && let Err(e) = stream.flush()
        {
            self.lose(&e);
        }
        Ok(())
    }
}

impl Output for Resumable {
    fn persist(&mut self) -> io::Result<()> {
        // The end itself is waited for: a reader away at the very end still gets it —
        // unless the agent was told to stop (its Pod deleted: its reader is gone).
        while self.stream.is_none() {
            if crate::follow::stop_requested() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "stopped while the reader was away",
                ));
            }
            self.take_returning_reader()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(stream) = &mut self.stream {
            stream.flush()?;
            stream.shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A stream being served to its first reader: (the reader's end, the agent's output,
    /// where a returning reader connects).
    fn streaming(
        window: Duration,
        token: Option<String>,
    ) -> (TcpStream, Resumable, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let first = TcpStream::connect(address).unwrap();
        let (served, _) = listener.accept().unwrap();
        let out = Resumable::new(served, listener, window, token).unwrap();
        (first, out, address)
    }

    /// A stream broken mid-way is resumed from the byte the reader had, and the reader
    /// reads it whole.
    #[test]
    fn a_reader_that_comes_back_gets_the_rest_from_its_byte() {
        let (first, mut out, address) = streaming(Duration::from_secs(5), None);
        out.write_all(b"0123456789").unwrap();
        let mut got = vec![0u8; 4];
        (&first).read_exact(&mut got).unwrap();
        // The connection breaks after the reader had 4 bytes.
        first.shutdown(std::net::Shutdown::Both).unwrap();
        drop(first);
        // Writes go on while it is away (the break is found by a write).
        for _ in 0..50 {
            out.write_all(b"ab").unwrap();
            if out.stream.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(out.stream.is_none(), "the broken connection was noticed");
        let mut again = TcpStream::connect(address).unwrap();
        again.write_all(b"resume 4\n").unwrap();
        out.write_all(b"!").unwrap();
        assert!(out.stream.is_some(), "resumed");
        out.persist().unwrap();
        let mut rest = Vec::new();
        again.read_to_end(&mut rest).unwrap();
        got.extend(rest);
        let text = String::from_utf8(got).unwrap();
        assert!(text.starts_with("0123456789"), "{text}");
        assert!(text.ends_with("ab!"), "{text}");
        assert_eq!(text.len() as u64, out.sent);
    }

    #[test]
    fn only_a_reader_with_the_sessions_token_may_resume() {
        let (first, mut out, address) =
            streaming(Duration::from_secs(5), Some("s3cret".to_owned()));
        out.write_all(b"abc").unwrap();
        // Comes while the first reader is still there: it would take its place.
        let mut thief = TcpStream::connect(address).unwrap();
        thief.write_all(b"resume 0\n").unwrap();
        let mut wrong = TcpStream::connect(address).unwrap();
        wrong.write_all(b"resume nope 0\n").unwrap();
        let mut owner = TcpStream::connect(address).unwrap();
        owner.write_all(b"resume s3cret 1\n").unwrap();
        out.write_all(b"d").unwrap();
        out.persist().unwrap();
        let mut got = String::new();
        owner.read_to_string(&mut got).unwrap();
        assert_eq!(got, "bcd");
        for mut refused in [thief, wrong] {
            let mut rest = Vec::new();
            let _ = refused.read_to_end(&mut rest);
            assert!(rest.is_empty());
        }
        drop(first);
    }

    #[test]
    fn a_reader_asking_for_bytes_not_kept_is_refused_and_none_in_time_ends_it() {
        let (first, mut out, address) = streaming(Duration::from_millis(300), None);
        out.write_all(b"abc").unwrap();
        drop(first);
        let started = Instant::now();
        let mut refused = None;
        loop {
            match out.write_all(b"x") {
                Ok(()) => {}
                Err(e) => break assert!(e.to_string().contains("did not come back"), "{e}"),
            }
            if out.stream.is_none() && refused.is_none() {
                let mut late = TcpStream::connect(address).unwrap();
                late.write_all(b"resume 999\n").unwrap();
                refused = Some(late);
            }
            assert!(started.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut late = refused.expect("a late reader came");
        let mut rest = Vec::new();
        let _ = late.read_to_end(&mut rest);
        assert!(rest.is_empty(), "refused: nothing sent");
    }
}
