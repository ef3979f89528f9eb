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
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::{
    http::{self, HttpError, Response},
    objects::{self, Host, Object},
    pods, portforward, render,
    routes::{self, Reply},
    store::Store,
    watch,
    workloads::{Runtime, Workloads},
};
use crate::spec::Cluster;

/// How often an idle connection checks whether the server is stopping.
const POLL: Duration = Duration::from_millis(200);
/// How long a connection may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a client may take to send a request once it started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one port-forward may last.
const FORWARD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How often created Pods' containers are looked at.
const KUBELET_POLL: Duration = Duration::from_millis(100);
/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 256;

struct Shared {
    store: Store,
    host: Host,
    addr: SocketAddr,
    stop: AtomicBool,
    /// The lab's own objects (the served set is these and the created Pods).
    cluster: Mutex<Vec<Object>>,
    workloads: Workloads,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Serves the lab's objects and the created Pods as they are now.
    fn publish(&self) {
        let cluster = self.cluster.lock().unwrap_or_else(PoisonError::into_inner);
        let mut objects = cluster.clone();
        objects.extend(self.workloads.objects());
        self.store.replace(objects);
    }
}

/// The lab's Kubernetes API server. Serves on background threads until dropped or
/// [`stop`](Self::stop)ped.
pub struct ApiServer {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    kubelet: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `addr` (use 127.0.0.1:0 in tests) and serves on background threads until
    /// dropped or `stop()`. Pods cannot be created.
    pub fn start(addr: SocketAddr, cluster: &Cluster) -> io::Result<Self> {
        Self::start_with(addr, cluster, None)
    }

    /// As [`start`](Self::start), and Pods created through the API are run by `runtime`.
    pub fn start_with(
        addr: SocketAddr,
        cluster: &Cluster,
        runtime: Option<Box<dyn Runtime>>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let host = Host::detect();
        let objects = objects::build(cluster, &host);
        let shared = Arc::new(Shared {
            store: Store::new(objects.clone()),
            host,
            addr,
            stop: AtomicBool::new(false),
            cluster: Mutex::new(objects),
            workloads: Workloads::new(runtime),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("lab-api-accept".to_owned())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        // The created Pods' statuses follow their containers, as a kubelet reports them.
        let kubelet = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("lab-api-kubelet".to_owned())
                .spawn(move || {
                    while !shared.stopping() {
                        if shared.workloads.refresh() {
                            shared.publish();
                        }
                        thread::sleep(KUBELET_POLL);
                    }
                    shared.workloads.stop_all();
                })?
        };
        Ok(Self {
            shared,
            acceptor: Some(acceptor),
            kubelet: Some(kubelet),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Replaces the served objects (scenario switch). Emits watch events
    /// (ADDED/MODIFIED/DELETED) for exactly what changed, with increasing
    /// resourceVersions.
    pub fn update(&self, cluster: &Cluster) {
        *self
            .shared
            .cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = objects::build(cluster, &self.shared.host);
        self.shared.publish();
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
        if let Some(kubelet) = self.kubelet.take() {
            let _ = kubelet.join();
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
        let reply = pods::route(&request, &shared.store, &shared.workloads, &|| {
            shared.publish()
        })
        .unwrap_or_else(|| routes::route(&request, &shared.store, shared.addr));
        let written = match reply {
            Reply::Forward(forward) => {
                // The connection is the forward's from here on, for as long as it lasts.
                reader.get_mut().deadline = Instant::now() + FORWARD_LIFETIME;
                let _ = portforward::serve(&request, &forward, reader, writer);
                return;
            }
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
