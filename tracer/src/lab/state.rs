//! What the lab has created, kept under `/run/tracer-lab/` so `down` removes exactly that,
//! even after a crashed `up`: namespace names are recorded *before* they are created.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::spec::Scenario;

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
        match std::env::var("TRACER_LAB_PREFIX") {
            Ok(prefix) => PathBuf::from(format!("/run/{prefix}state")),
            Err(_) => PathBuf::from("/run/tracer-lab"),
        }
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
        // Write-then-rename: the daemon polls this file and must never read half of it.
        let tmp = self.file("scenario.tmp");
        fs::write(&tmp, scenario.name())?;
        fs::rename(tmp, self.file("scenario"))
    }

    pub fn scenario_path(&self) -> PathBuf {
        self.file("scenario")
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.file("kubeconfig")
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
        assert_eq!(state.daemon_pid(), None);
        state.remove().unwrap();
        assert!(!dir.exists());
    }
}
