//! A lab of a test's own, under a unique namespace prefix, taken down on drop.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

/// A lab of this test's own; `down` on drop.
pub struct Lab {
    pub prefix: String,
}

impl Lab {
    pub fn up(scenario: &str) -> Self {
        Self::up_named("", scenario)
    }

    /// A lab with kube-proxy in `proxy_mode` (`iptables`, `nftables`, `ipvs`).
    pub fn up_in(scenario: &str, proxy_mode: &str) -> Self {
        Self::try_up_in(scenario, proxy_mode).unwrap_or_else(|out| {
            panic!(
                "lab up --scenario {scenario} --proxy-mode {proxy_mode}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Like [`Lab::up_in`], or what `lab up` said when it failed (nothing is left then).
    pub fn try_up_in(scenario: &str, proxy_mode: &str) -> Result<Self, Output> {
        let lab = Self {
            prefix: format!("tlt{}-", std::process::id()),
        };
        let out = lab.tracer(&[
            "lab",
            "up",
            "--scenario",
            scenario,
            "--proxy-mode",
            proxy_mode,
        ]);
        if out.status.success() {
            Ok(lab)
        } else {
            Err(out)
        }
    }

    /// A lab brought up with these `lab up` arguments (`--scenario`, `--clock-offset`, …).
    pub fn up_with(args: &[&str]) -> Self {
        let lab = Self {
            prefix: format!("tlt{}-", std::process::id()),
        };
        let out = lab.tracer(&[&["lab", "up"], args].concat());
        assert!(
            out.status.success(),
            "lab up {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// A second lab beside [`Lab::up`]'s, told apart by `tag` in its prefix (`tlt<pid><tag>-`).
    pub fn up_named(tag: &str, scenario: &str) -> Self {
        let lab = Self {
            prefix: format!("tlt{}{tag}-", std::process::id()),
        };
        let out = lab.tracer(&["lab", "up", "--scenario", scenario]);
        assert!(
            out.status.success(),
            "lab up --scenario {scenario}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn tracer(&self, args: &[&str]) -> Output {
        crate::tracer()
            .args(args)
            .env("TRACER_LAB_PREFIX", &self.prefix)
            .output()
            .expect("run tracer")
    }

    pub fn switch(&self, scenario: &str) {
        self.switch_to(scenario, "iptables");
    }

    /// `lab up` in place, to another scenario or proxy mode.
    pub fn switch_to(&self, scenario: &str, proxy_mode: &str) {
        let out = self.tracer(&[
            "lab",
            "up",
            "--scenario",
            scenario,
            "--proxy-mode",
            proxy_mode,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs a command in a lab namespace (`cpu1`, `pod-nettest`, `client`, …).
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(argv)
            .output()
            .expect("ip netns exec")
    }

    pub fn exec_ok(&self, ns: &str, argv: &[&str]) -> String {
        let out = self.exec(ns, argv);
        assert!(
            out.status.success(),
            "{argv:?} in {ns}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        PathBuf::from(format!("/run/{}state/kubeconfig", self.prefix))
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &["ping", "-c", "2", "-i", "0.2", "-W", "1", to])
            .status
            .success()
    }

    /// `curl` from a namespace; returns (exit code, headers + body).
    pub fn curl(&self, from: &str, url: &str) -> (i32, String) {
        let out = self.exec(from, &["curl", "-s", "-i", "-m", "3", url]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.tracer(&["lab", "down"]);
    }
}
