//! What the soak starts, each stopped and removed on drop: its temporary directory, its
//! lab, the UI in tmux, the JSON follow and the traffic.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{ENDPOINT, REQUESTS_PER_SECOND, SERVICE, pause, sh};

/// The temporary directory; removed on drop.
pub(super) struct WorkDir(pub(super) PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The soak's own lab; `lab down` on drop.
pub(super) struct Lab {
    pub(super) tracer: PathBuf,
    pub(super) prefix: String,
}

impl Lab {
    pub(super) fn up(tracer: &Path) -> anyhow::Result<Self> {
        let lab = Self {
            tracer: tracer.to_owned(),
            prefix: format!("tsk{}-", std::process::id()),
        };
        sh(lab.command().args(["lab", "up", "--scenario", "healthy"]))?;
        Ok(lab)
    }

    pub(super) fn command(&self) -> Command {
        let mut command = Command::new(&self.tracer);
        command.env("TRACER_LAB_PREFIX", &self.prefix);
        command
    }

    pub(super) fn netns(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}{name}", self.prefix))
    }

    pub(super) fn kubeconfig(&self) -> PathBuf {
        PathBuf::from(format!("/run/{}state/kubeconfig", self.prefix))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["lab", "down"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A tmux server of our own with one session running the UI; on drop: `q`, then the
/// server is killed, then the tracer if it still runs.
///
/// The pane runs `/bin/sh -c 'TRACER …; echo $? > STATUS'`: the exit status comes from the
/// shell's blocking wait, not from tmux, which was seen leaving the tracer a zombie (and
/// `#{pane_dead_status}` empty) after the tracer exited.
pub(super) struct Tmux {
    /// The server's socket, in the temporary directory (tmux leaves it behind).
    pub(super) socket: PathBuf,
    pub(super) status: PathBuf,
    /// The tracer (the pane's shell's child), once known.
    pub(super) tracer_pid: Option<u32>,
}

impl Tmux {
    pub(super) fn start(work: &Path, argv: &[&str]) -> anyhow::Result<Self> {
        let conf = work.join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g status off\nset -g default-shell /bin/sh\n",
        )?;
        let mut tmux = Self {
            socket: work.join("tmux.sock"),
            status: work.join("ui.status"),
            tracer_pid: None,
        };
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let command = format!(
            "{}; echo $? > {}",
            argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "),
            quote(tmux.status.to_str().context("path")?)
        );
        let mut args = vec!["-f".to_owned(), conf.to_str().context("path")?.to_owned()];
        args.extend(
            ["new-session", "-d", "-s", "soak", "-x", "120", "-y", "40"].map(str::to_owned),
        );
        args.push(command);
        tmux.tmux(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let shell: u32 = tmux
            .tmux(&["display-message", "-p", "-t", "soak", "#{pane_pid}"])?
            .trim()
            .parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tmux.tracer_pid.is_none() {
            tmux.tracer_pid = child_named(shell, "tracer");
            if Instant::now() > deadline {
                bail!("the tracer did not start in tmux:\n{}", tmux.screen());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(tmux)
    }

    pub(super) fn tmux(&self, args: &[&str]) -> anyhow::Result<String> {
        sh(Command::new("tmux").arg("-S").arg(&self.socket).args(args))
    }

    pub(super) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "soak"])
            .unwrap_or_default()
    }

    /// The tracer's exit status once it has ended (128 + the signal when a signal ended
    /// it, as shells say).
    pub(super) fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(&self.status)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Sends `q` and waits for the tracer to end; its exit status.
    pub(super) fn quit(&self, within: Duration) -> anyhow::Result<Option<i32>> {
        self.tmux(&["send-keys", "-t", "soak", "q"])?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return Ok(Some(status));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(None)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.quit(Duration::from_secs(5));
        }
        let _ = self.tmux(&["kill-server"]);
        if let Some(pid) = self.tracer_pid {
            thread::sleep(Duration::from_millis(500));
            kill_if_tracer(pid);
        }
    }
}

/// A child of `parent` whose command is `name`.
pub(super) fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(')')?;
            // After the command: state, then the parent's pid.
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && comm == name).then_some(pid)
        })
}

/// SIGKILL `pid` if it is still a tracer process (not a reused pid).
pub(super) fn kill_if_tracer(pid: u32) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "tracer"
        && let Ok(pid) = i32::try_from(pid)
    {
        // SAFETY: signalling a process we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `tracer follow … --output json --record FILE`, stdout to /dev/null; killed on drop.
pub(super) struct JsonFollow {
    pub(super) child: Child,
    pub(super) stderr: mpsc::Receiver<String>,
}

impl JsonFollow {
    pub(super) fn start(lab: &Lab, tracer: &Path, recording: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(tracer)
            .args(["follow", "nettest", "svc/nginx-test", "--output", "json"])
            .arg("--record")
            .arg(recording)
            .arg("--kubeconfig")
            .arg(lab.kubeconfig())
            .args(["--netns-prefix", &lab.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start tracer follow --output json")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let follow = Self { child, stderr: rx };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match follow.stderr.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("watching") => return Ok(follow),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    pause(Duration::ZERO)?;
                }
                _ => bail!("tracer follow --output json did not start"),
            }
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, as Ctrl-C would; exit status and everything it printed on stderr.
    pub(super) fn stop(&mut self) -> anyhow::Result<(Option<i32>, Vec<String>)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(i32::try_from(self.child.id())?, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                thread::sleep(Duration::from_millis(100));
                return Ok((status.code(), self.stderr.try_iter().collect()));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok((None, self.stderr.try_iter().collect()))
    }
}

impl Drop for JsonFollow {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The traffic: a thread in nettest's namespace making HTTP requests to the Service at a
/// fixed rate, and a `ping` to an endpoint. Both stopped on drop.
pub(super) struct Traffic {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) ok: Arc<AtomicU64>,
    pub(super) failed: Arc<AtomicU64>,
    pub(super) thread: Option<thread::JoinHandle<()>>,
    pub(super) ping: Option<Child>,
    pub(super) pings_sent: Option<String>,
}

impl Traffic {
    pub(super) fn start(netns: &Path) -> anyhow::Result<Self> {
        let ns = File::open(netns).with_context(|| format!("open {}", netns.display()))?;
        let mut traffic = Self {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            thread: None,
            ping: None,
            pings_sent: None,
        };
        let (stop, ok, failed) = (
            Arc::clone(&traffic.stop),
            Arc::clone(&traffic.ok),
            Arc::clone(&traffic.failed),
        );
        let (entered_tx, entered_rx) = mpsc::channel();
        traffic.thread = Some(thread::Builder::new().name("soak-traffic".into()).spawn(
            move || {
                // SAFETY: plain syscall on an fd we own; moves only this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let _ = entered_tx.send(Err(std::io::Error::last_os_error()));
                    return;
                }
                let _ = entered_tx.send(Ok(()));
                let service: SocketAddr = SERVICE.parse().expect("address");
                let period = Duration::from_secs(1) / REQUESTS_PER_SECOND;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let counter = if http_get(service).is_ok() {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    next += period;
                    match next.checked_duration_since(Instant::now()) {
                        Some(wait) => thread::sleep(wait),
                        // More than a second behind (a slow request): do not burst.
                        None if Instant::now() - next > Duration::from_secs(1) => {
                            next = Instant::now();
                        }
                        None => {}
                    }
                }
            },
        )?);
        entered_rx
            .recv()?
            .context("enter nettest's network namespace")?;
        traffic.ping = Some(
            Command::new("ip")
                .args(["netns", "exec"])
                .arg(netns.file_name().context("netns name")?)
                .args(["ping", "-q", "-i", "0.1", ENDPOINT])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("start ping")?,
        );
        Ok(traffic)
    }

    pub(super) fn requests(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Stops both; ping's own summary line.
    pub(super) fn stop(&mut self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(mut ping) = self.ping.take() {
            // SIGINT makes ping print its statistics.
            if let Ok(pid) = i32::try_from(ping.id()) {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            let mut out = String::new();
            if let Some(mut stdout) = ping.stdout.take() {
                let _ = stdout.read_to_string(&mut out);
            }
            let _ = ping.wait();
            self.pings_sent = out
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .map(str::to_owned);
        }
        self.pings_sent.clone()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn http_get(service: SocketAddr) -> std::io::Result<()> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&service, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: nginx-test\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("not 200 OK"))
    }
}
