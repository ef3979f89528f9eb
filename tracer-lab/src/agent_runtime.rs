//! How the lab runs the Pods created through its API: it has no container runtime, so it
//! runs tracer's agent image as this machine's own `tracer` binary, a process with the
//! container's arguments. A lab node is a network namespace of this machine and every
//! node's agent would listen on the same port, so the `--listen` address is replaced by
//! an ephemeral loopback port; the agent says which (`waiting for a reader on ADDR`) and
//! port-forwards to the Pod's declared port go there, as a container runtime maps ports.
//! The process's output goes to `<logs>/<namespace>_<pod>.log`.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1 as core;

use crate::api::workloads::{Container, Runtime};

/// How long a stopped agent has to end before it is killed (it ends on SIGTERM at once).
const GRACE: Duration = Duration::from_secs(5);

/// What the agent prints once it listens.
const LISTENING: &str = "waiting for a reader on ";

pub struct AgentRuntime {
    /// The tracer binary that stands for the agent image.
    pub program: PathBuf,
    /// Environment the agent runs with (the lab's kubeconfig: a real agent Pod reads the
    /// API through its service account).
    pub env: Vec<(String, String)>,
    pub logs: PathBuf,
}

/// The container's argv, when it runs tracer: its command (`tracer …`) and args, or its
/// args alone (the image's entrypoint is `tracer`).
fn tracer_args(container: &core::Container) -> Result<Vec<String>, String> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    match command.split_first() {
        None => Ok(args),
        Some((program, rest))
            if std::path::Path::new(program).file_name() == Some("tracer".as_ref()) =>
        {
            Ok(rest.iter().chain(&args).cloned().collect())
        }
        Some((program, _)) => Err(format!(
            "the lab runs only tracer's agent image (command `tracer …`), not {program:?}"
        )),
    }
}

/// Replaces `--listen ADDR` by an ephemeral loopback port; returns the declared port.
fn rewrite_listen(args: &mut [String]) -> Option<u16> {
    let at = args.iter().position(|a| a == "--listen")? + 1;
    let declared: SocketAddr = args.get(at)?.parse().ok()?;
    args[at] = "127.0.0.1:0".to_owned();
    Some(declared.port())
}

impl Runtime for AgentRuntime {
    fn start(&self, pod: &core::Pod) -> Result<Box<dyn Container>, String> {
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .ok_or("no container")?;
        let mut args = tracer_args(container)?;
        let declared = rewrite_listen(&mut args);
        let log_path = self.logs.join(format!(
            "{}_{}.log",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or("pod")
        ));
        std::fs::create_dir_all(&self.logs).map_err(|e| format!("{}: {e}", self.logs.display()))?;
        let mut log =
            File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let _ = writeln!(log, "$ tracer {}", args.join(" "));
        // The container's own environment, as a runtime gives it, with the downward API's
        // fields of the Pod itself.
        let field = |path: &str| match path {
            "metadata.name" => pod.metadata.name.clone(),
            "metadata.namespace" => pod.metadata.namespace.clone(),
            "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            _ => None,
        };
        let own: Vec<(String, String)> = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| {
                let value = match (&e.value, &e.value_from) {
                    (Some(value), _) => Some(value.clone()),
                    (None, Some(from)) => field(&from.field_ref.as_ref()?.field_path),
                    (None, None) => None,
                };
                Some((e.name.clone(), value?))
            })
            .collect();
        let mut child = Command::new(&self.program)
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(own)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run {}: {e}", self.program.display()))?;
        let listening = Arc::new(Mutex::new(None));
        let last_line = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let listening = listening.clone();
            let last_line = last_line.clone();
            thread::Builder::new()
                .name("lab-agent-log".to_owned())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        let _ = writeln!(log, "{line}");
                        if !line.trim().is_empty() {
                            line.trim().clone_into(
                                &mut last_line.lock().unwrap_or_else(PoisonError::into_inner),
                            );
                        }
                        if let Some(at) = line.find(LISTENING)
                            && let Some(rest) = line.get(at + LISTENING.len()..)
                            && let Some(Ok(addr)) =
                                rest.split_whitespace().next().map(str::parse::<SocketAddr>)
                        {
                            *listening.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(Box::new(Agent {
            child,
            declared,
            listening,
            last_line,
            exit: None,
            terminating: None,
        }))
    }
}

struct Agent {
    child: Child,
    declared: Option<u16>,
    listening: Arc<Mutex<Option<SocketAddr>>>,
    last_line: Arc<Mutex<String>>,
    exit: Option<bool>,
    /// When it was asked to stop.
    terminating: Option<Instant>,
}

impl Container for Agent {
    fn serves(&mut self, port: u16) -> Option<SocketAddr> {
        if self.declared != Some(port) || self.exited().is_some() {
            return None;
        }
        *self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn ready(&mut self) -> bool {
        match self.declared {
            Some(port) => self.serves(port).is_some(),
            None => self.exited().is_none(),
        }
    }

    fn exited(&mut self) -> Option<bool> {
        if self.exit.is_none()
            && self
                .terminating
                .is_some_and(|since| since.elapsed() >= GRACE)
        {
            let _ = self.child.kill();
        }
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status.success());
        }
        self.exit
    }

    fn last_words(&self) -> String {
        self.last_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn terminate(&mut self) {
        if self.exited().is_some() || self.terminating.is_some() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid, which is not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        self.terminating = Some(Instant::now());
    }

    fn stop(&mut self) {
        self.terminate();
        if self.exit.is_some() {
            return;
        }
        let until = self.terminating.unwrap_or_else(Instant::now) + GRACE;
        while Instant::now() < until {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exit = Some(false);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str]) -> core::Container {
        core::Container {
            command: (!command.is_empty())
                .then(|| command.iter().map(|s| (*s).to_owned()).collect()),
            args: Some(args.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn runs_tracer_only() {
        assert_eq!(
            tracer_args(&container(&["/usr/local/bin/tracer"], &["agent", "a", "b"])).unwrap(),
            ["agent", "a", "b"]
        );
        assert_eq!(tracer_args(&container(&[], &["agent"])).unwrap(), ["agent"]);
        assert!(tracer_args(&container(&["nginx"], &[])).is_err());
    }

    #[test]
    fn listen_goes_to_an_ephemeral_loopback_port() {
        let mut args: Vec<String> = [
            "agent",
            "a",
            "b",
            "--listen",
            "127.0.0.1:4790",
            "--node",
            "cpu1",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(rewrite_listen(&mut args), Some(4790));
        assert_eq!(args[4], "127.0.0.1:0");
        assert_eq!(args[6], "cpu1");
        assert_eq!(rewrite_listen(&mut ["agent".to_owned()]), None);
    }
}
