//! The terminal UI in a real terminal: tmux runs `tracer replay` and a live `tracer follow`,
//! keys go in with `send-keys`, and the screen is read back with `capture-pane` — the
//! journey list and a path, and the flow view (`f`) with its drill-down. Needs
//! root (the lab); serial.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use tracer_tests::{follow::Follow, lab::Lab, require_root, scaled};

/// A detached tmux session on a server of its own (`-L`), the server killed on drop. On the
/// shared default server, killing one test's last session shuts the server down, and the
/// next test's `new-session` could reach it while it exited ("server exited unexpectedly").
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Self {
        let session = Self {
            name: format!("{name}-{}", std::process::id()),
        };
        let out = session
            .tmux()
            .args(["new-session", "-d", "-s", &session.name])
            .args(["-x", "120", "-y", "40", command])
            .output()
            .expect("tmux");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        session
    }

    /// A tmux command addressed to this session's own server.
    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.name]);
        command
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = self
                .tmux()
                .args(["send-keys", "-t", &self.name, key])
                .status()
                .unwrap();
            assert!(status.success());
            thread::sleep(Duration::from_millis(150));
        }
    }

    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every needle.
    fn wait_for(&self, needles: &[&str]) -> String {
        self.wait_until(&format!("{needles:?} shown"), |screen| {
            needles.iter().all(|n| screen.contains(n))
        })
    }

    /// Waits until the screen no longer shows `needle` (the UI has ended).
    fn wait_gone(&self, needle: &str) -> String {
        self.wait_until(&format!("{needle:?} gone"), |screen| {
            !screen.contains(needle)
        })
    }

    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + scaled(Duration::from_secs(20));
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never {what}:\n{screen}");
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn alive(&self) -> bool {
        self.tmux()
            .args(["has-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn replay_in_a_real_terminal_draws_a_known_journeys_path() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let recording = std::env::temp_dir().join(format!("tracer-tmux-{}.trace", std::process::id()));
    let record_arg = recording.to_str().unwrap().to_owned();
    let follow = Follow::start(
        &lab,
        &[
            "nettest",
            "svc/nginx-test",
            "--proto",
            "tcp",
            "--record",
            &record_arg,
        ],
    );
    assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
    follow.stop();

    let tmux = Tmux::start(
        "tracer-replay",
        &format!(
            "{} replay {record_arg}; sleep 30",
            tracer_tests::tracer_bin().display()
        ),
    );
    // A short recording plays to its end at once: the header says END rather than REPLAY.
    tmux.wait_for(&["recording", "nettest"]);
    // Show everything, go to the first journey (the SYN), open its path.
    tmux.keys(&["End", "g", "Enter"]);
    let screen = tmux.wait_for(&["service DNAT", "KUBE-SEP-"]);
    assert!(
        screen.contains("svc/nginx-test") || screen.contains("default/nginx-test"),
        "{screen}"
    );
    assert!(
        screen.contains("cali37b956d7204"),
        "nettest's veth on the path:\n{screen}"
    );
    assert!(screen.contains("cpu2"), "{screen}");
    // The flow view: the request flow and its path; Enter lists that path's journeys.
    tmux.keys(&["Escape", "f"]);
    let screen = tmux.wait_for(&[
        "Flows",
        "tcp nettest → svc/nginx-test:80 (request)",
        "tcp svc/nginx-test:80 → nettest (reply)",
        "▶ path 1 ✓ delivered",
    ]);
    assert!(
        screen.contains("service DNAT 10.109.60.89:80 → "),
        "{screen}"
    );
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[
        "on path 1 of tcp nettest → svc/nginx-test:80 (request)",
        "SYN",
    ]);
    tmux.keys(&["q"]);
    // q quits and the terminal is restored.
    tmux.wait_gone("Journeys");
    let _ = std::fs::remove_file(&recording);
}

#[test]
fn live_follow_in_a_real_terminal_shows_journeys_as_they_happen() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let command = format!(
        "{} follow nettest svc/nginx-test --kubeconfig {} --netns-prefix {}; sleep 30",
        tracer_tests::tracer_bin().display(),
        lab.kubeconfig().display(),
        lab.prefix
    );
    let tmux = Tmux::start("tracer-live", &command);
    tmux.wait_for(&["LIVE"]);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
    let screen = tmux.wait_for(&["nettest", "svc/nginx-test", "SYN"]);
    assert!(screen.contains("delivered"), "{screen}");
    // The flow view live: the connection's request and reply flows, each path delivered.
    tmux.keys(&["f"]);
    tmux.wait_for(&[
        "Flows",
        "tcp nettest → svc/nginx-test:80 (request)",
        "tcp svc/nginx-test:80 → nettest (reply)",
        "✓ delivered",
    ]);
    tmux.keys(&["q"]);
    // q ends the live session.
    tmux.wait_gone("LIVE");
    assert!(tmux.alive(), "tracer exited and the shell went on (sleep)");
}

/// A sampled session in a real terminal (`follow --sample 16 --flows`): the flow view gives
/// the UDP stream's path the packets counted besides those traced, live; the committed
/// sampled recording replays with its exact counts.
#[test]
fn sampled_flows_in_a_real_terminal_live_and_replayed() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let command = format!(
        "{} follow nettest nginx-test-7d9c4b6f5-abcde --sample 16 --proto udp --flows --kubeconfig {} --netns-prefix {}; sleep 30",
        tracer_tests::tracer_bin().display(),
        lab.kubeconfig().display(),
        lab.prefix
    );
    let tmux = Tmux::start("tracer-sampled", &command);
    // The flow view opens first (`--flows`) and says so before any journey.
    tmux.wait_for(&["LIVE", "Flows"]);
    let _server = tracer_tests::ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("pod-nginx-test-7d9c4b6f5-abcde")])
            .args(["iperf3", "-s", "-1", "-p", "5302"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 -s"),
    );
    let client = || {
        lab.exec(
            "pod-nettest",
            &[
                "iperf3",
                "-c",
                "10.244.184.84",
                "-p",
                "5302",
                "-u",
                "-b",
                "1M",
                "-l",
                "64",
                "-t",
                "1",
            ],
        )
        .status
        .success()
    };
    tracer_tests::wait_until(
        "iperf3 to reach its server",
        Duration::from_secs(10),
        client,
    );
    let screen = tmux.wait_for(&[
        "udp nettest → nginx-test-7d9c4b6f5-abcde:5302 (request)",
        " counted",
    ]);
    assert!(screen.contains("✓ delivered"), "{screen}");
    tmux.keys(&["q"]);
    drop(tmux);

    let recording = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/recordings/sampled-udp.trace"
    );
    let tmux = Tmux::start(
        "tracer-sampled-replay",
        &format!(
            "{} replay --flows {recording}; sleep 30",
            tracer_tests::tracer_bin().display()
        ),
    );
    tmux.keys(&["End"]);
    tmux.wait_for(&[
        "udp nettest → nginx-test-7d9c4b6f5-abcde:5201 (request)",
        "124 pkts +1829 counted",
    ]);
}
