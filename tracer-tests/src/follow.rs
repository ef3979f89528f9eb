//! `tracer follow` as a child process against a test lab, read as JSON journeys.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{lab::Lab, scaled};

pub struct Follow {
    child: Child,
    /// Reads the journeys as they come (a full pipe would stall the tracer's event loop).
    stdout: Option<thread::JoinHandle<String>>,
    /// Everything the tracer printed on stderr so far.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Appends to `stderr` until the tracer's stderr closes.
    stderr_drain: Option<thread::JoinHandle<()>>,
}

impl Follow {
    /// Starts `tracer follow FROM TO --output json` with the lab's kubeconfig, looking only
    /// at the lab's namespaces, and waits until its programs are attached.
    pub fn start(lab: &Lab, args: &[&str]) -> Self {
        Self::start_in_lab(lab, "follow", args)
    }

    /// Starts `tracer agent ARGS` with the lab's kubeconfig (ARGS name the node and the
    /// recording), and waits until it says it is ready.
    pub fn agent(lab: &Lab, args: &[&str]) -> Self {
        Self::start_in_lab(lab, "agent", args)
    }

    fn start_in_lab(lab: &Lab, command: &str, args: &[&str]) -> Self {
        let kubeconfig = lab.kubeconfig();
        let mut full: Vec<&str> = args.to_vec();
        let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
        // The API's first answer takes longer under emulation, as everything does.
        let api_timeout = format!("{}s", scaled(Duration::from_secs(10)).as_secs());
        full.extend(["--kubeconfig", kubeconfig, "--api-timeout", &api_timeout]);
        Self::spawn(&lab.prefix, command, &full)
    }

    /// Starts `tracer follow ARGS --output json` (unless ARGS choose an output), looking
    /// only at the host's namespace and those named `prefix…` (`--netns-prefix`).
    pub fn start_with(prefix: &str, args: &[&str]) -> Self {
        Self::spawn(prefix, "follow", args)
    }

    fn spawn(prefix: &str, command: &str, args: &[&str]) -> Self {
        // An agent records; it shows no journeys.
        let json: &[&str] = if args.contains(&"--output") || command == "agent" {
            &[]
        } else {
            &["--output", "json"]
        };
        let mut child = crate::tracer()
            .arg(command)
            .args(args)
            .args(json)
            .args(["--netns-prefix", prefix])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tracer follow");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = tx.send(std::mem::take(&mut line));
            }
        });
        let mut seen = String::new();
        let deadline = Instant::now() + scaled(Duration::from_secs(30));
        while !seen.contains("watching") {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => seen.push_str(&line),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("tracer {command} did not start: {seen}");
                }
            }
        }
        // Keep draining stderr so the child never blocks on it.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = std::sync::Arc::clone(&stderr);
        let stderr_drain = thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                sink.lock().unwrap().push_str(&line);
            }
        });
        let stdout = child.stdout.take().map(|mut stdout| {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = stdout.read_to_string(&mut text);
                text
            })
        });
        Self {
            child,
            stdout,
            stderr,
            stderr_drain: Some(stderr_drain),
        }
    }

    /// Waits until the tracer has printed `needle` on stderr; false after `timeout`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + scaled(timeout);
        while Instant::now() < deadline {
            if self.stderr.lock().unwrap().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Everything the tracer printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Lets in-flight packets settle, stops the tracer with Ctrl-C (SIGINT) and returns
    /// every journey it printed.
    pub fn stop(self) -> Vec<Value> {
        self.stop_with_stderr().0
    }

    /// Like [`Follow::stop`], with what the tracer printed on stderr (its summary).
    pub fn stop_with_stderr(self) -> (Vec<Value>, String) {
        let (text, stderr) = self.stop_raw();
        let journeys = journeys_of(&text);
        (journeys, stderr)
    }

    /// Stops the tracer as [`Follow::stop`] does; returns its stdout and stderr as text.
    pub fn stop_raw(mut self) -> (String, String) {
        thread::sleep(scaled(Duration::from_millis(800)));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap(), libc::SIGINT) };
        let status = self.child.wait().expect("wait");
        let text = self
            .stdout
            .take()
            .expect("stdout")
            .join()
            .expect("read journeys");
        // All of stderr, the summary last: the drain ends when the tracer's stderr closes.
        if let Some(drain) = self.stderr_drain.take() {
            drain.join().expect("read stderr");
        }
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "tracer exited with {status}: {stderr}");
        (text, stderr)
    }
}

impl Follow {
    /// Stops the tracer (SIGSTOP) until [`Follow::resume`]: its kernel programs go on
    /// writing while nothing reads, as when a busy machine starves the reader.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: signalling our own child, which has not been waited for.
        let rc = unsafe { libc::kill(i32::try_from(self.child.id()).unwrap(), signal) };
        assert_eq!(rc, 0, "kill({signal}): {}", std::io::Error::last_os_error());
    }

    /// Kills the tracer with SIGKILL, as `kill -9` or the OOM killer would: none of its own
    /// clean-up runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The journeys of `--output json` text: every line but the closing summary line.
pub fn journeys_of(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v.get("session_summary").is_none())
        .collect()
}

/// The closing summary line of `--output json` text.
pub fn summary_of(text: &str) -> Value {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("session_summary").cloned())
        .unwrap_or_else(|| panic!("no summary line in {text}"))
}

/// The journeys whose packet `summary` (`SYN`, `echo-reply`, …) is this one.
pub fn of_summary<'a>(journeys: &'a [Value], summary: &str) -> Vec<&'a Value> {
    journeys
        .iter()
        .filter(|j| j["summary"] == summary)
        .collect()
}

/// Hops of a journey with this kind.
pub fn hops<'a>(journey: &'a Value, kind: &str) -> Vec<&'a Value> {
    journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == kind)
        .collect()
}

pub fn has_hop(journey: &Value, kind: &str) -> bool {
    !hops(journey, kind).is_empty()
}
