//! `cargo xtask soak [--minutes N]`: a live `tracer follow` in the real terminal UI, under
//! steady traffic, for N minutes (default 60); writes `docs/soak.md`.
//!
//! - A lab of its own (`TRACER_LAB_PREFIX=tsk<pid>-`, healthy scenario), so a lab someone
//!   else has up is never touched, and the follow sees only this lab's namespaces.
//! - The UI: `tracer follow nettest svc/nginx-test` in a detached tmux session on a tmux
//!   server of its own (`tmux -S`), 120×40, under a shell that writes the tracer's exit
//!   status to a file after `q`. The UI keeps the newest journeys (its retention, read
//!   from the header); that is what bounds its memory, so the growth check starts once
//!   retention is full.
//! - Beside it, `tracer follow … --output json --record FILE` to /dev/null: the path
//!   without retention, and a long recording, which is replayed at the end.
//! - Traffic: one thread inside nettest's namespace makes HTTP requests to the Service
//!   (`Connection: close`, so each is a new connection through the DNAT) at a fixed rate,
//!   and one `ping` to an endpoint Pod. Everything stays inside the lab's namespaces.
//! - Every sample (30 s; 10 s for runs under 10 minutes): VmRSS and VmHWM
//!   (/proc/PID/status), CPU time (/proc/PID/stat), liveness, and the screen
//!   (`tmux capture-pane`): the header must be there and its journey count must grow.
//! - At the end: `q`, exit status 0, and none of the BPF programs and links the tracers
//!   held (read from /proc/PID/fdinfo while they ran) may still exist.
//!
//! Everything it starts is stopped and removed on every path, Ctrl-C included (guards
//! dropped in reverse order: traffic, the JSON follow, the tmux server, the lab, the
//! temporary directory).

use std::{
    collections::BTreeSet,
    fmt::Write as _,
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

/// The Service the traffic goes to (`svc/nginx-test`), and one of its endpoints for ping.
const SERVICE: &str = "10.109.60.89:80";
const ENDPOINT: &str = "10.244.184.84";
/// HTTP requests per second; with `Connection: close` each is about 12 journeys (SYN,
/// SYN-ACK, ACKs, data, FINs, both directions), plus 20 journeys/s of ping.
const REQUESTS_PER_SECOND: u32 = 30;
/// Allowed RSS growth from the baseline sample to the last one.
const GROWTH_BOUND: f64 = 0.20;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Sleeps, but gives up when Ctrl-C (or SIGTERM/SIGHUP) arrived.
fn pause(duration: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
    }
    Ok(())
}

fn sh(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The temporary directory; removed on drop.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The soak's own lab; `lab down` on drop.
struct Lab {
    tracer: PathBuf,
    prefix: String,
}

impl Lab {
    fn up(tracer: &Path) -> anyhow::Result<Self> {
        let lab = Self {
            tracer: tracer.to_owned(),
            prefix: format!("tsk{}-", std::process::id()),
        };
        sh(lab.command().args(["lab", "up", "--scenario", "healthy"]))?;
        Ok(lab)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.tracer);
        command.env("TRACER_LAB_PREFIX", &self.prefix);
        command
    }

    fn netns(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}{name}", self.prefix))
    }

    fn kubeconfig(&self) -> PathBuf {
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
struct Tmux {
    /// The server's socket, in the temporary directory (tmux leaves it behind).
    socket: PathBuf,
    status: PathBuf,
    /// The tracer (the pane's shell's child), once known.
    tracer_pid: Option<u32>,
}

impl Tmux {
    fn start(work: &Path, argv: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
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
        for (key, value) in env {
            args.extend(["-e".to_owned(), format!("{key}={value}")]);
        }
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

    fn tmux(&self, args: &[&str]) -> anyhow::Result<String> {
        sh(Command::new("tmux").arg("-S").arg(&self.socket).args(args))
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "soak"])
            .unwrap_or_default()
    }

    /// The tracer's exit status once it has ended (128 + the signal when a signal ended
    /// it, as shells say).
    fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(&self.status)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Sends `q` and waits for the tracer to end; its exit status.
    fn quit(&self, within: Duration) -> anyhow::Result<Option<i32>> {
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
fn child_named(parent: u32, name: &str) -> Option<u32> {
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
fn kill_if_tracer(pid: u32) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "tracer"
        && let Ok(pid) = i32::try_from(pid)
    {
        // SAFETY: signalling a process we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `tracer follow … --output json --record FILE`, stdout to /dev/null; killed on drop.
struct JsonFollow {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl JsonFollow {
    fn start(lab: &Lab, tracer: &Path, recording: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(tracer)
            .args(["follow", "nettest", "svc/nginx-test", "--output", "json"])
            .arg("--record")
            .arg(recording)
            .arg("--kubeconfig")
            .arg(lab.kubeconfig())
            .env("TRACER_NETNS_PREFIX", &lab.prefix)
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, as Ctrl-C would; exit status and everything it printed on stderr.
    fn stop(&mut self) -> anyhow::Result<(Option<i32>, Vec<String>)> {
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
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
    ping: Option<Child>,
    pings_sent: Option<String>,
}

impl Traffic {
    fn start(netns: &Path) -> anyhow::Result<Self> {
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

    fn requests(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Stops both; ping's own summary line.
    fn stop(&mut self) -> Option<String> {
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

fn http_get(service: SocketAddr) -> std::io::Result<()> {
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

/// Memory and CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ticks: u64,
}

fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if status
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("zombie") || l.contains("dead")))
    {
        return None;
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| rest.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu_ticks: ticks(14)? + ticks(15)?,
    })
}

/// The BPF programs and links a process holds, from its fdinfo.
fn bpf_objects(pid: u32) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut programs, mut links) = (BTreeSet::new(), BTreeSet::new());
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (programs, links);
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for line in info.lines() {
            let mut words = line.split_whitespace();
            let id = |w: Option<&str>| w.and_then(|v| v.parse::<u32>().ok());
            match words.next() {
                Some("prog_id:") => programs.extend(id(words.next())),
                Some("link_id:") => links.extend(id(words.next())),
                _ => {}
            }
        }
    }
    (programs, links)
}

/// Those of `programs` and `links` that still exist, waiting up to 5 s (the kernel frees
/// them asynchronously after the last fd closes).
fn remaining(programs: &BTreeSet<u32>, links: &BTreeSet<u32>) -> Vec<String> {
    let exists = |kind: &str, id: u32| {
        Command::new("bpftool")
            .args([kind, "show", "id", &id.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = links
            .iter()
            .filter(|&&id| exists("link", id))
            .map(|id| format!("link {id}"))
            .chain(
                programs
                    .iter()
                    .filter(|&&id| exists("prog", id))
                    .map(|id| format!("program {id}")),
            )
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// What the UI's header says.
#[derive(Debug, Default, Clone, Copy)]
struct Header {
    live: bool,
    journeys: Option<u64>,
    /// Journeys by verdict: delivered, dropped, incomplete.
    verdicts: [u64; 3],
    lost: Option<u64>,
    retention: Option<u64>,
    let_go: u64,
}

fn parse_header(screen: &str) -> Header {
    // " LIVE  Pod default/nettest … → Service default/nginx-test …"
    // "68837 journeys (382.0/s) ✓68257 ✗673 ?0  lost 0"
    // "keeping last 10000 (58837 older let go)  source Kubernetes API …"
    let number = |word: &str| {
        word.trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()
    };
    let stats = screen.lines().find(|l| l.contains(" journeys ("));
    let words: Vec<&str> = stats.map_or(Vec::new(), |l| l.split_whitespace().collect());
    let tagged = |tag: char| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(tag))
            .and_then(number)
            .unwrap_or(0)
    };
    let after = |needle: &str| {
        screen
            .split(needle)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(number)
    };
    Header {
        live: screen.lines().next().is_some_and(|l| l.contains("LIVE")),
        journeys: words.first().copied().and_then(number),
        verdicts: [tagged('✓'), tagged('✗'), tagged('?')],
        lost: words
            .iter()
            .position(|&w| w == "lost")
            .and_then(|i| words.get(i + 1).copied())
            .and_then(number),
        retention: after("keeping last "),
        let_go: screen
            .lines()
            .find(|l| l.contains(" older let go"))
            .and_then(|l| l.split(" older let go").next())
            .and_then(|before| before.rsplit('(').next())
            .and_then(number)
            .unwrap_or(0),
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since the traffic started.
    at: Duration,
    ui: Usage,
    json: Option<Usage>,
    header: Header,
    requests_ok: u64,
    requests_failed: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn clock(at: Duration) -> String {
    let s = at.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// CPU use between two samples, in % of one core.
fn cpu_percent(ticks: u64, over: Duration) -> f64 {
    // SAFETY: trivial libc call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz / over.as_secs_f64().max(1e-9) * 100.0
}

struct Outcome {
    samples: Vec<Sample>,
    failures: Vec<String>,
    notes: Vec<String>,
    /// Index of the sample the growth check starts from.
    baseline: Option<usize>,
    retention_full_at: Option<Duration>,
    ui_exit: Option<i32>,
    json_exit: Option<i32>,
    json_summary: String,
    recording_bytes: u64,
    replay: String,
    ui_objects: (usize, usize),
    pings: String,
}

fn soak(tracer: &Path, duration: Duration) -> anyhow::Result<Outcome> {
    let interval = if duration >= Duration::from_secs(600) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(10)
    };
    let warmup = (duration / 3).min(Duration::from_secs(600));

    let work = WorkDir(std::env::temp_dir().join(format!("tracer-soak-{}", std::process::id())));
    std::fs::create_dir_all(&work.0)?;
    eprintln!("soak: lab up (healthy)");
    let lab = Lab::up(tracer)?;
    let kubeconfig = lab.kubeconfig();
    let tracer_arg = tracer.to_str().context("path")?;
    let kubeconfig_arg = kubeconfig.to_str().context("path")?;
    let tmux = Tmux::start(
        &work.0,
        &[
            tracer_arg,
            "follow",
            "nettest",
            "svc/nginx-test",
            "--kubeconfig",
            kubeconfig_arg,
        ],
        &[("TRACER_NETNS_PREFIX", &lab.prefix)],
    )?;
    let ui_pid = tmux.tracer_pid.context("the UI's pid")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !parse_header(&tmux.screen()).live {
        if Instant::now() > deadline || tmux.exit_status().is_some() {
            bail!("the UI never showed LIVE:\n{}", tmux.screen());
        }
        pause(Duration::from_millis(200))?;
    }
    // Attached once the header is up; give it a moment to finish attaching everything.
    pause(Duration::from_secs(2))?;
    let (ui_programs, ui_links) = bpf_objects(ui_pid);
    eprintln!(
        "soak: UI live (pid {ui_pid}, {} programs, {} links)",
        ui_programs.len(),
        ui_links.len()
    );

    let recording = work.0.join("soak.trace");
    let mut json = JsonFollow::start(&lab, tracer, &recording)?;
    pause(Duration::from_secs(1))?;
    let (json_programs, json_links) = bpf_objects(json.pid());

    let mut traffic = Traffic::start(&lab.netns("pod-nettest"))?;
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures = Vec::new();
    let mut next = started;
    loop {
        let at = started.elapsed();
        let screen = tmux.screen();
        let header = parse_header(&screen);
        let (requests_ok, requests_failed) = traffic.requests();
        let Some(ui) = usage(ui_pid) else {
            failures.push(format!(
                "the UI's tracer died at {}; last screen:\n{screen}",
                clock(at)
            ));
            break;
        };
        let json_usage = usage(json.pid());
        if json_usage.is_none() {
            failures.push(format!("the JSON follow died at {}", clock(at)));
            break;
        }
        let sample = Sample {
            at,
            ui,
            json: json_usage,
            header,
            requests_ok,
            requests_failed,
        };
        eprintln!(
            "soak: {} journeys {} RSS {:.1} MiB (JSON follow {:.1} MiB) requests {requests_ok} ok {requests_failed} failed",
            clock(at),
            header.journeys.map_or("?".into(), |n| n.to_string()),
            mib(ui.rss_kib),
            mib(json_usage.map_or(0, |u| u.rss_kib)),
        );
        let previous = samples.last().and_then(|s| s.header.journeys);
        samples.push(sample);
        if !header.live || header.journeys.is_none() {
            failures.push(format!(
                "the screen stopped rendering its header at {}:\n{screen}",
                clock(at)
            ));
            break;
        }
        if samples.len() > 2 && header.journeys <= previous {
            failures.push(format!(
                "the journey count stopped growing at {} ({} → {}; requests {requests_ok} ok, {requests_failed} failed):\n{screen}",
                clock(at),
                previous.unwrap_or(0),
                header.journeys.unwrap_or(0)
            ));
            break;
        }
        if at >= duration {
            break;
        }
        next += interval;
        pause(next.saturating_duration_since(Instant::now()))?;
    }
    let pings = traffic.stop().unwrap_or_default();
    drop(traffic);

    // Quit the UI as a user would.
    let ui_exit = if failures.is_empty() {
        tmux.quit(Duration::from_secs(15))?
    } else {
        None
    };
    let final_screen = tmux.screen();
    if failures.is_empty() && ui_exit != Some(0) {
        failures.push(format!(
            "the UI did not exit with status 0 after q: {ui_exit:?}\n{final_screen}"
        ));
    }
    let (json_exit, json_stderr) = json.stop()?;
    if json_exit != Some(0) {
        failures.push(format!(
            "the JSON follow did not exit with status 0 on SIGINT: {json_exit:?}\n{}",
            json_stderr.join("\n")
        ));
    }
    drop(json);
    drop(tmux);
    let left = remaining(
        &ui_programs.union(&json_programs).copied().collect(),
        &ui_links.union(&json_links).copied().collect(),
    );
    if !left.is_empty() {
        failures.push(format!(
            "still in the kernel after both tracers ended: {}",
            left.join(", ")
        ));
    }
    if ui_links.is_empty() {
        failures.push("the UI's tracer held no BPF links (nothing attached?)".into());
    }

    let recording_bytes = std::fs::metadata(&recording).map_or(0, |m| m.len());
    let replay = if json_exit == Some(0) {
        let out = Command::new(tracer)
            .args(["replay", "--output", "json"])
            .arg(&recording)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            failures.push(format!("replaying the recording failed: {text}"));
        }
        text
    } else {
        String::new()
    };

    let retention_full_at = samples.iter().find(|s| s.header.let_go > 0).map(|s| s.at);
    let baseline = samples
        .iter()
        .position(|s| s.at >= warmup && s.header.let_go > 0)
        .filter(|&i| i + 1 < samples.len());
    let mut notes = Vec::new();
    if let Some(lost) = samples
        .last()
        .and_then(|s| s.header.lost)
        .filter(|&l| l > 0)
    {
        notes.push(format!("the UI counted {lost} events lost in the kernel"));
    }
    if samples.len() > 1 {
        match baseline {
            Some(i) => {
                let (base, last) = (&samples[i], &samples[samples.len() - 1]);
                for (who, from, to) in [
                    ("the UI", base.ui.rss_kib, last.ui.rss_kib),
                    (
                        "the JSON follow",
                        base.json.map_or(0, |u| u.rss_kib),
                        last.json.map_or(0, |u| u.rss_kib),
                    ),
                ] {
                    let growth = to as f64 / from.max(1) as f64 - 1.0;
                    if growth > GROWTH_BOUND {
                        failures.push(format!(
                            "{who}'s RSS grew {:.1} % from {} to {} ({:.1} → {:.1} MiB), bound {:.0} %",
                            growth * 100.0,
                            clock(base.at),
                            clock(last.at),
                            mib(from),
                            mib(to),
                            GROWTH_BOUND * 100.0
                        ));
                    }
                }
            }
            None => failures.push(format!(
                "the UI's retention was not full after {} with a sample after it, so memory growth could not be checked: run longer",
                clock(warmup)
            )),
        }
    }
    Ok(Outcome {
        samples,
        failures,
        notes,
        baseline,
        retention_full_at,
        ui_exit,
        json_exit,
        json_summary: json_stderr
            .iter()
            .find(|l| l.contains(" journeys: "))
            .cloned()
            .unwrap_or_default(),
        recording_bytes,
        replay,
        ui_objects: (ui_programs.len(), ui_links.len()),
        pings,
    })
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / 1_048_576.0);
    format!(
        "{} cores ({model}), {memory:.0} GiB RAM, kernel {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    )
}

fn report(minutes: u64, outcome: &Outcome) -> anyhow::Result<String> {
    let samples = &outcome.samples;
    let (first, last) = (
        samples.first().context("no samples")?,
        samples.last().context("no samples")?,
    );
    let span = last.at.saturating_sub(first.at);
    let journeys = last.header.journeys.unwrap_or(0);
    let mut doc = String::new();
    writeln!(doc, "# Soak: a live follow under steady traffic\n")?;
    writeln!(
        doc,
        "`sudo -E cargo xtask soak{}` runs `tracer follow nettest svc/nginx-test` in the terminal UI (a detached tmux session, 120×40) against a lab of its own (healthy scenario) while nettest makes {REQUESTS_PER_SECOND} HTTP requests/s to `svc/nginx-test` (a new connection each, through the Service DNAT, about 12 journeys each) and pings an endpoint Pod 10 times/s. Beside the UI, a second `tracer follow … --output json --record FILE` writes to /dev/null and records. Every {} s it reads both tracers' VmRSS, VmHWM and CPU time from /proc and the UI's screen (`tmux capture-pane`); at the end it quits the UI with `q`, stops the other with SIGINT, checks both exit with status 0, that none of the BPF programs and links they held remains, and replays the recording. Source: `xtask/src/soak.rs`.\n",
        if minutes == 60 {
            String::new()
        } else {
            format!(" --minutes {minutes}")
        },
        if minutes >= 10 { 30 } else { 10 }
    )?;
    writeln!(
        doc,
        "It fails when a tracer dies, the screen stops showing its header or its journey count stops growing, either tracer's RSS grows by more than {:.0} % from the baseline (the first sample after min(10 minutes, a third of the run) at which the UI's retention is full, i.e. it has let old journeys go) to the end, an exit status is not 0, or a BPF program or link of theirs remains.\n",
        GROWTH_BOUND * 100.0
    )?;
    if minutes < 60 {
        writeln!(
            doc,
            "This run was shorter than the default of 60 minutes (`cargo xtask soak`); its figures check the task more than the tracer.\n"
        )?;
    }
    writeln!(doc, "## Last run\n")?;
    writeln!(doc, "| | |\n|---|---|")?;
    writeln!(doc, "| machine | {} |", machine())?;
    writeln!(
        doc,
        "| duration | {} of traffic ({minutes} min asked) |",
        clock(span)
    )?;
    writeln!(
        doc,
        "| traffic | {} HTTP requests ({} failed), {:.1}/s; {} |",
        last.requests_ok + last.requests_failed,
        last.requests_failed,
        (last.requests_ok + last.requests_failed) as f64 / span.as_secs_f64().max(1e-9),
        if outcome.pings.is_empty() {
            "ping: no summary"
        } else {
            outcome.pings.as_str()
        }
    )?;
    writeln!(
        doc,
        "| journeys (UI) | {journeys}, {:.0}/s: {} delivered, {} dropped, {} incomplete; events lost in the kernel: {} |",
        journeys as f64 / span.as_secs_f64().max(1e-9),
        last.header.verdicts[0],
        last.header.verdicts[1],
        last.header.verdicts[2],
        last.header.lost.unwrap_or(0)
    )?;
    writeln!(
        doc,
        "| UI retention | newest {} journeys; full (old ones let go) from {} |",
        last.header.retention.unwrap_or(0),
        outcome.retention_full_at.map_or("never".to_owned(), clock)
    )?;
    let peak = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let ui_cpu = cpu_percent(last.ui.cpu_ticks - first.ui.cpu_ticks, span);
    let json_cpu = cpu_percent(
        last.json.map_or(0, |u| u.cpu_ticks) - first.json.map_or(0, |u| u.cpu_ticks),
        span,
    );
    writeln!(
        doc,
        "| UI tracer | peak RSS (VmHWM) {:.1} MiB; CPU {ui_cpu:.1} % of one core; {} programs, {} links held; exit status after q: {} |",
        mib(peak(|s| s.ui.hwm_kib)),
        outcome.ui_objects.0,
        outcome.ui_objects.1,
        outcome
            .ui_exit
            .map_or("did not exit".to_owned(), |c| c.to_string())
    )?;
    writeln!(
        doc,
        "| JSON + record tracer | peak RSS (VmHWM) {:.1} MiB; CPU {json_cpu:.1} % of one core; exit status after SIGINT: {}; `{}` |",
        mib(peak(|s| s.json.map_or(0, |u| u.hwm_kib))),
        outcome
            .json_exit
            .map_or("did not exit".to_owned(), |c| c.to_string()),
        outcome.json_summary.trim()
    )?;
    writeln!(
        doc,
        "| recording | {:.1} MiB; replay: `{}` |",
        outcome.recording_bytes as f64 / 1_048_576.0,
        outcome.replay.lines().last().unwrap_or("not replayed")
    )?;
    match outcome.baseline {
        Some(i) => {
            let base = &samples[i];
            let growth = |a: u64, b: u64| (b as f64 / a.max(1) as f64 - 1.0) * 100.0;
            writeln!(
                doc,
                "| RSS growth from {} to {} | UI {:.1} → {:.1} MiB ({:+.1} %); JSON follow {:.1} → {:.1} MiB ({:+.1} %); bound {:.0} % |",
                clock(base.at),
                clock(last.at),
                mib(base.ui.rss_kib),
                mib(last.ui.rss_kib),
                growth(base.ui.rss_kib, last.ui.rss_kib),
                mib(base.json.map_or(0, |u| u.rss_kib)),
                mib(last.json.map_or(0, |u| u.rss_kib)),
                growth(
                    base.json.map_or(0, |u| u.rss_kib),
                    last.json.map_or(0, |u| u.rss_kib)
                ),
                GROWTH_BOUND * 100.0
            )?;
        }
        None => writeln!(doc, "| RSS growth | not checked (no baseline sample) |")?,
    }
    let verdict = if outcome.failures.is_empty() {
        "**PASS**".to_owned()
    } else {
        format!(
            "**FAIL**: {}",
            outcome.failures.join("; ").replace('\n', " ")
        )
    };
    writeln!(doc, "| verdict | {verdict} |")?;
    for note in &outcome.notes {
        writeln!(doc, "\nNote: {note}.")?;
    }

    // Rows every 5 minutes for long runs, every 30 s for short ones, plus the baseline
    // and the last sample.
    let every = if minutes >= 20 { 300 } else { 30 };
    writeln!(
        doc,
        "\n### Samples (every {} of {} taken)\n",
        if every == 300 { "5 minutes" } else { "30 s" },
        samples.len()
    )?;
    writeln!(
        doc,
        "| time | journeys (UI) | journeys/s | UI RSS MiB | UI VmHWM MiB | UI CPU % | JSON follow RSS MiB | JSON follow CPU % |"
    )?;
    writeln!(doc, "|---|---|---|---|---|---|---|---|")?;
    let mut previous: Option<&Sample> = None;
    for (i, sample) in samples.iter().enumerate() {
        let shown = sample.at.as_secs() % every < 5
            || Some(i) == outcome.baseline
            || i + 1 == samples.len();
        if !shown {
            continue;
        }
        let (rate, ui_cpu, json_cpu) = match previous {
            Some(p) => {
                let over = sample.at.saturating_sub(p.at);
                (
                    format!(
                        "{:.0}",
                        (sample.header.journeys.unwrap_or(0) - p.header.journeys.unwrap_or(0))
                            as f64
                            / over.as_secs_f64().max(1e-9)
                    ),
                    format!(
                        "{:.1}",
                        cpu_percent(sample.ui.cpu_ticks - p.ui.cpu_ticks, over)
                    ),
                    format!(
                        "{:.1}",
                        cpu_percent(
                            sample.json.map_or(0, |u| u.cpu_ticks)
                                - p.json.map_or(0, |u| u.cpu_ticks),
                            over
                        )
                    ),
                )
            }
            None => ("–".into(), "–".into(), "–".into()),
        };
        writeln!(
            doc,
            "| {}{} | {} | {rate} | {:.1} | {:.1} | {ui_cpu} | {:.1} | {json_cpu} |",
            clock(sample.at),
            if Some(i) == outcome.baseline {
                " (baseline)"
            } else {
                ""
            },
            sample.header.journeys.unwrap_or(0),
            mib(sample.ui.rss_kib),
            mib(sample.ui.hwm_kib),
            mib(sample.json.map_or(0, |u| u.rss_kib)),
        )?;
        previous = Some(sample);
    }
    writeln!(
        doc,
        "\nRates and CPU are over the interval since the previous row shown; CPU is user + system time of the whole process (all threads) in % of one core."
    )?;
    Ok(doc)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let minutes = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(60), |s| s.parse::<u64>())
        .context("--minutes takes a whole number")?;
    if minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    let (root, tracer) = crate::root_and_release_tracer("soak")?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    let outcome = soak(&tracer, Duration::from_secs(minutes * 60))?;
    if outcome.samples.is_empty() {
        bail!("soak failed:\n- {}", outcome.failures.join("\n- "));
    }
    let doc = report(minutes, &outcome)?;
    let out = root.join("docs/soak.md");
    std::fs::write(&out, doc)?;
    eprintln!("wrote {}", out.display());
    for note in &outcome.notes {
        eprintln!("soak: note: {note}");
    }
    if !outcome.failures.is_empty() {
        bail!("soak failed:\n- {}", outcome.failures.join("\n- "));
    }
    eprintln!("soak: PASS");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_live_header() {
        let screen = " LIVE  Pod default/nettest (10.244.102.137, node cpu2) → Service default/nginx-test\n\
68837 journeys (382.0/s) ✓68257 ✗673 ?7  lost 12 (12 ring buffer full, 0 unreadable)\n\
keeping last 10000 (58837 older let go)  source Kubernetes API http://127.0.0.1:40991\n";
        let header = parse_header(screen);
        assert!(header.live);
        assert_eq!(header.journeys, Some(68_837));
        assert_eq!(header.verdicts, [68_257, 673, 7]);
        assert_eq!(header.lost, Some(12));
        assert_eq!(header.retention, Some(10_000));
        assert_eq!(header.let_go, 58_837);

        let fresh = parse_header(
            " LIVE  x\n0 journeys (0.0/s) ✓0 ✗0 ?0  lost 0\nkeeping last 10000  source y\n",
        );
        assert_eq!((fresh.journeys, fresh.let_go), (Some(0), 0));
        assert!(!parse_header("following Pod …\n").live);
        assert_eq!(parse_header("$ \n").journeys, None);
    }
}
