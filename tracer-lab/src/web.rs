//! The lab Pods' HTTP servers: what `nginx:alpine` serves in the seed, answered by a small
//! server bound to port 80 inside each Pod's namespace. Each response names the Pod that
//! served it (`X-Served-By`), so tests can tell the three nginx-test endpoints apart.
//! `GET /bytes/N` answers N bytes, for large transfers (the MTU black hole).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use super::spec::Server;

pub const NGINX_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking.</p>\n</body>\n</html>\n";

/// The seed's ConfigMap `webapp-config`, key `index.html`.
pub const WEBAPP_PAGE: &str = "\n<!DOCTYPE html>\n<html>\n<head>\n    <title>Kubernetes Web App</title>\n</head>\n<body>\n    <h1>Welcome to Kubernetes!</h1>\n    <p>This page is served from a ConfigMap</p>\n</body>\n</html>\n";

/// Largest `/bytes/N` answered.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// A Pod's HTTP server; [`WebServer::stop`] closes its listener (a Pod going away).
pub struct WebServer {
    listener: TcpListener,
    stopping: Arc<AtomicBool>,
}

impl WebServer {
    /// Stops accepting: the accept loop wakes (a shut-down listening socket fails
    /// `accept`) and drops the listener, so nothing of the Pod's namespace stays open but
    /// connections being answered, which close within their timeout.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        // SAFETY: shutdown on a socket this value owns.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

/// Binds port 80 inside the namespace at `netns_path` and serves on a background thread.
pub fn serve_in(netns_path: &Path, pod: String, server: Server) -> std::io::Result<WebServer> {
    let listener = tracer_netns::run_in(netns_path, || TcpListener::bind("0.0.0.0:80"))??;
    let accepting = listener.try_clone()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&stopping);
    thread::Builder::new()
        .name(format!("http-{pod}"))
        .spawn(move || {
            loop {
                match accepting.accept() {
                    Ok((stream, _)) => {
                        let pod = pod.clone();
                        thread::spawn(move || {
                            let _ = answer(stream, &pod, server);
                        });
                    }
                    Err(_) if stop.load(Ordering::Relaxed) => return,
                    // Out of descriptors and the like: back off rather than spin.
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(WebServer { listener, stopping })
}

fn answer(mut stream: TcpStream, pod: &str, server: Server) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match (path, server) {
        (p, _) if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => ("200 OK", "x".repeat(n)),
            _ => ("400 Bad Request", "bad size\n".to_owned()),
        },
        ("/" | "/index.html", Server::WebApp) => ("200 OK", WEBAPP_PAGE.to_owned()),
        ("/" | "/index.html", _) => ("200 OK", NGINX_PAGE.to_owned()),
        _ => ("404 Not Found", "404 Not Found\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: nginx/1.27.3\r\nContent-Type: text/html\r\nContent-Length: {}\r\nX-Served-By: {pod}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
