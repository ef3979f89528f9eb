//! What the lab has created, kept under `/run/tracer-lab/` so `down` removes exactly that,
//! even after a crashed `up`: namespace names are recorded *before* they are created.
//!
//! It also holds what the cluster is now: the scenario, kube-proxy's mode, and the Pod
//! changes made since `up` (`changes`, one [`PodChange`] a line), from which [`State::cluster`] derives the
//! cluster every command and the daemon use. The daemon writes how many changes it has
//! served (`applied`), so `replace-pod` can wait for the API and the HTTP servers before
//! it moves traffic.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::spec::{Cluster, PodChange, ProxyMode, Scenario};

pub struct State {
    dir: PathBuf,
}

impl State {
    /// `/run/tracer-lab`; a lab with its own `TRACER_LAB_PREFIX` (tests) keeps its state
    /// beside it, in `/run/<prefix>state`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("TRACER_LAB_STATE_DIR") {
            return PathBuf::from(dir);
        }
        Self::dir_of_prefix(&crate::plan::prefix())
    }

    /// Where the lab whose namespaces start with `prefix` keeps its state.
    pub fn dir_of_prefix(prefix: &str) -> PathBuf {
        if prefix == crate::plan::DEFAULT_PREFIX {
            PathBuf::from("/run/tracer-lab")
        } else {
            PathBuf::from(format!("/run/{prefix}state"))
        }
    }

    /// Each node's clock offset (`lab up --clock-offset`), in nanoseconds; none: all agree.
    pub fn clock_offsets(&self) -> Vec<(String, i64)> {
        fs::read_to_string(self.file("clock-offsets"))
            .map(|text| {
                text.lines()
                    .filter_map(|line| {
                        let (node, ns) = line.split_once(' ')?;
                        Some((node.to_owned(), ns.trim().parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_clock_offsets(&self, offsets: &[(String, i64)]) -> io::Result<()> {
        let text: String = offsets
            .iter()
            .map(|(node, ns)| format!("{node} {ns}\n"))
            .collect();
        self.write_whole("clock-offsets", &text)
    }

    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes one of the lab's files whole or not at all (a temporary file, then a rename):
    /// the daemon and `up` poll them and must never read one half written.
    fn write_whole(&self, name: &str, text: &str) -> io::Result<()> {
        let tmp = self.file(&format!("{name}.tmp"));
        fs::write(&tmp, text)?;
        fs::rename(tmp, self.file(name))
    }

    pub fn ensure_dir(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    /// Namespaces recorded as created by the lab.
    pub fn namespaces(&self) -> Vec<String> {
        fs::read_to_string(self.file("namespaces"))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub fn record_namespaces(&self, names: &[String]) -> io::Result<()> {
        let mut all = self.namespaces();
        for name in names {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
        fs::write(self.file("namespaces"), all.join("\n") + "\n")
    }

    pub fn is_built(&self) -> bool {
        self.file("built").exists()
    }

    pub fn mark_built(&self) -> io::Result<()> {
        fs::write(self.file("built"), "")
    }

    pub fn scenario(&self) -> Option<Scenario> {
        let text = fs::read_to_string(self.file("scenario")).ok()?;
        Scenario::from_name(text.trim())
    }

    pub fn set_scenario(&self, scenario: Scenario) -> io::Result<()> {
        self.write_whole("scenario", scenario.name())
    }

    /// kube-proxy's mode; iptables for a lab built before modes existed.
    pub fn proxy_mode(&self) -> ProxyMode {
        fs::read_to_string(self.file("proxy-mode"))
            .ok()
            .and_then(|text| ProxyMode::from_name(text.trim()))
            .unwrap_or_default()
    }

    pub fn set_proxy_mode(&self, mode: ProxyMode) -> io::Result<()> {
        self.write_whole("proxy-mode", mode.name())
    }

    /// The Pod changes made since `up`, in order.
    pub fn changes(&self) -> Vec<PodChange> {
        fs::read_to_string(self.file("changes"))
            .map(|text| text.lines().filter_map(PodChange::parse).collect())
            .unwrap_or_default()
    }

    /// Appends a change.
    pub fn push_change(&self, change: &PodChange) -> io::Result<()> {
        let mut lines: Vec<String> = self.changes().iter().map(PodChange::to_line).collect();
        lines.push(change.to_line());
        self.write_whole("changes", &(lines.join("\n") + "\n"))
    }

    /// The cluster as it is now: the scenario's seed with the changes made; `None` while
    /// the lab is down.
    pub fn cluster(&self) -> Option<Cluster> {
        let scenario = self.scenario()?;
        Some(self.cluster_in(scenario))
    }

    /// The cluster in `scenario` with the changes made (what `up --scenario` switches to).
    pub fn cluster_in(&self, scenario: Scenario) -> Cluster {
        Cluster::seed(scenario).with_changes(&self.changes())
    }

    /// How many changes the daemon serves (API objects and HTTP servers).
    pub fn applied(&self) -> Option<usize> {
        fs::read_to_string(self.file("applied"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn set_applied(&self, count: usize) -> io::Result<()> {
        self.write_whole("applied", &count.to_string())
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.file("kubeconfig")
    }

    /// `up` takes the kubeconfig's existence as the daemon's readiness.
    pub fn set_kubeconfig(&self, text: &str) -> io::Result<()> {
        self.write_whole("kubeconfig", text)
    }

    pub fn daemon_log_path(&self) -> PathBuf {
        self.file("daemon.log")
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.file("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Only a live process that is our daemon counts (pids are reused).
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.contains("lab daemon").then_some(pid)
    }

    pub fn set_daemon_pid(&self, pid: u32) -> io::Result<()> {
        fs::write(self.file("daemon.pid"), pid.to_string())
    }

    /// Removes the state directory and everything in it.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_namespaces_and_scenario() {
        let dir =
            std::env::temp_dir().join(format!("tracer-lab-state-test-{}", std::process::id()));
        let state = State::open(&dir);
        state.ensure_dir().unwrap();
        state.record_namespaces(&["a".into(), "b".into()]).unwrap();
        state.record_namespaces(&["b".into(), "c".into()]).unwrap();
        assert_eq!(state.namespaces(), ["a", "b", "c"]);
        assert_eq!(state.scenario(), None);
        state.set_scenario(Scenario::Vxlan).unwrap();
        assert_eq!(state.scenario(), Some(Scenario::Vxlan));
        assert_eq!(state.proxy_mode(), ProxyMode::Iptables);
        state.set_proxy_mode(ProxyMode::Ipvs).unwrap();
        assert_eq!(state.proxy_mode(), ProxyMode::Ipvs);
        assert_eq!(state.daemon_pid(), None);

        assert!(state.changes().is_empty());
        let healthy = Cluster::seed(Scenario::Healthy);
        let rollout = healthy
            .rollout("nginx-test-7d9c4b6f5-abcde", false, "state", 0)
            .unwrap();
        for change in &rollout.changes {
            state.push_change(change).unwrap();
        }
        assert_eq!(state.changes(), rollout.changes);
        let now = state.cluster().unwrap();
        assert_eq!(now.scenario, Scenario::Vxlan);
        assert!(now.pod(&rollout.new.name).is_some());
        assert!(now.pod(&rollout.old.name).is_none());
        assert_eq!(state.applied(), None);
        state.set_applied(2).unwrap();
        assert_eq!(state.applied(), Some(2));
        state.remove().unwrap();
        assert!(!dir.exists());
    }
}
