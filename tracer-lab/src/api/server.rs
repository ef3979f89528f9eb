//! The listening side: a `TcpListener` on an accept thread, one thread per connection,
//! keep-alive request loops, and shutdown.
//!
//! Every blocking call is bounded so that [`ApiServer`]'s drop can end everything: reads
//! wake every [`POLL`] to check the stop flag (an idle connection closes after
//! [`IDLE_TIMEOUT`], a request head must arrive within [`REQUEST_TIMEOUT`]), writes give
//! up after [`WRITE_TIMEOUT`], and watches check the flag and their client between events. The accept loop is woken
//! by a connection to itself, then joins every connection thread.

use std::{
    io::{self, BufRead, BufReader, ErrorKind},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::{
    http::{self, HttpError, Response},
    objects::{self, Host},
    render,
    routes::{self, Reply},
    store::Store,
    watch,
};
use crate::spec::Cluster;

/// How often an idle connection checks whether the server is stopping.
const POLL: Duration = Duration::from_millis(200);
/// How long a connection may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a client may take to send a request once it started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 256;

struct Shared {
    store: Store,
    host: Host,
    addr: SocketAddr,
    stop: AtomicBool,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The lab's Kubernetes API server. Serves on background threads until dropped or
/// [`stop`](Self::stop)ped.
pub struct ApiServer {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `addr` (use 127.0.0.1:0 in tests) and serves on background threads until
    /// dropped or `stop()`.
    pub fn start(addr: SocketAddr, cluster: &Cluster) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let host = Host::detect();
        let shared = Arc::new(Shared {
            store: Store::new(objects::build(cluster, &host)),
            host,
            addr,
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("lab-api-accept".to_owned())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self {
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Replaces the served objects (scenario switch). Emits watch events
    /// (ADDED/MODIFIED/DELETED) for exactly what changed, with increasing
    /// resourceVersions.
    pub fn update(&self, cluster: &Cluster) {
        self.shared
            .store
            .replace(objects::build(cluster, &self.shared.host));
    }

    /// Stops serving: ends watches, closes connections and joins every thread.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.store.wake_all();
        // Wake the accept loop with a connection of our own.
        let mut wake = self.shared.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(mut stream) = stream else {
            // Out of descriptors and the like: back off rather than spin.
            thread::sleep(POLL);
            continue;
        };
        connections.retain(|c| !c.is_finished());
        if connections.len() >= MAX_CONNECTIONS {
            let busy = render::status_response(&render::status(
                503,
                "ServiceUnavailable",
                "too many connections",
                None,
            ));
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = http::write_response(&mut stream, &busy, false);
            continue;
        }
        let shared = shared.clone();
        match thread::Builder::new()
            .name("lab-api-conn".to_owned())
            .spawn(move || serve_connection(stream, &shared))
        {
            Ok(handle) => connections.push(handle),
            Err(_) => thread::sleep(POLL),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Whether the peer still has its end open (a closed one reads as EOF).
fn peer_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => is_timeout(&e) || e.kind() == ErrorKind::Interrupted,
    };
    stream.set_nonblocking(false).is_ok() && open
}

/// The socket's read side, read in [`POLL`] slices so that a wait for bytes (an idle
/// keep-alive connection, a slow request head) ends when the server stops or the current
/// deadline passes.
struct Patient<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    deadline: Instant,
}

impl io::Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                    if self.shared.stopping() {
                        return Err(io::Error::new(
                            ErrorKind::ConnectionAborted,
                            "server stopping",
                        ));
                    }
                    if Instant::now() >= self.deadline {
                        return Err(io::Error::new(ErrorKind::TimedOut, "client too slow"));
                    }
                }
                other => return other,
            }
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    // The read timeout belongs to the socket, so it covers every clone.
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let (Ok(read_half), Ok(probe)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let mut reader = BufReader::new(Patient {
        stream: read_half,
        shared,
        deadline: Instant::now(),
    });
    let mut writer = stream;
    loop {
        reader.get_mut().deadline = Instant::now() + IDLE_TIMEOUT;
        // Wait for the next request's first byte; EOF or an error ends the connection.
        if !matches!(reader.fill_buf(), Ok(bytes) if !bytes.is_empty()) {
            return;
        }
        reader.get_mut().deadline = Instant::now() + REQUEST_TIMEOUT;
        let request = match http::read_request(&mut reader) {
            Ok(request) => request,
            Err(HttpError::Closed | HttpError::Io(_)) => return,
            Err(e @ (HttpError::Malformed(_) | HttpError::TooLarge)) => {
                let (code, reason) = match e {
                    HttpError::TooLarge => (413, "RequestEntityTooLarge"),
                    _ => (400, "BadRequest"),
                };
                let reply =
                    render::status_response(&render::status(code, reason, &e.to_string(), None));
                let _ = http::write_response(&mut writer, &reply, false);
                return;
            }
        };
        let keep_alive = request.keep_alive() && !shared.stopping();
        let written = match routes::route(&request, &shared.store, shared.addr) {
            Reply::Done(response) => http::write_response(&mut writer, &response, keep_alive),
            Reply::Watch(_) if request.http10 => http::write_response(
                &mut writer,
                &Response::text(400, "watch needs HTTP/1.1"),
                false,
            ),
            Reply::Watch(w) => watch::serve(&mut writer, &shared.store, &w, &|| {
                !shared.stopping() && peer_open(&probe)
            }),
        };
        if written.is_err() || !keep_alive || request.http10 {
            return;
        }
    }
}
