//! tracer's end-to-end tests, a package whose only job they are (as aya's
//! `test/integration-test`): each file in `tests/` is one test binary; this library is
//! their support — a root check that says why it skips, command runners, RAII guards that
//! remove what a test created even when it fails, a lab of a test's own ([`lab::Lab`]) and
//! `tracer follow` as a child process ([`follow::Follow`]).
//!
//! Most tests need root and all of them run one at a time; `scripts/test.sh` runs them
//! after building the binary they drive:
//!
//! ```text
//! cargo build -p tracer --bin tracer
//! cargo test -p tracer-tests -- --test-threads=1          # or --test NAME
//! ```
//!
//! The `tracer` binary is found by [`tracer_bin`]. Cargo gives `CARGO_BIN_EXE_<name>` only
//! to the tests of the package that has the binary, and artifact dependencies (which would
//! build it for us) are not on stable Rust, so the binary is built first and found where
//! cargo puts it: beside the `deps/` folder this test executable runs from
//! (`target/<profile>/tracer`), or at `$TRACER_BIN` (e.g. a release build). Where several
//! checkouts share one `CARGO_TARGET_DIR`, that path holds whichever checkout built last:
//! set `TRACER_BIN` there.

pub mod follow;
pub mod lab;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The `tracer` binary under test: `$TRACER_BIN` if set, else the one cargo built for this
/// profile (`target/<profile>/tracer`; test executables run from `target/<profile>/deps/`).
/// Panics, saying how to build it, when there is none.
pub fn tracer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = std::env::var_os("TRACER_BIN").map_or_else(
            || {
                let exe = std::env::current_exe().expect("the test executable's path");
                exe.parent()
                    .and_then(Path::parent)
                    .expect("test executables run from target/<profile>/deps")
                    .join("tracer")
            },
            PathBuf::from,
        );
        assert!(
            path.is_file(),
            "no tracer binary at {}: build it first (cargo build -p tracer --bin tracer, as scripts/test.sh does) or set TRACER_BIN",
            path.display()
        );
        path
    })
}

/// The release build of `tracer` (`target/release/tracer`, or `$TRACER_RELEASE_BIN`), for
/// the tests that measure what users get: timing and memory of a debug build say nothing
/// about the product. `scripts/test.sh` builds it.
pub fn release_tracer_bin() -> PathBuf {
    let path = std::env::var_os("TRACER_RELEASE_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .expect("test executables run from target/<profile>/deps")
                .join("release/tracer")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no release tracer at {}: build it first (cargo build --release -p tracer --bin tracer, as scripts/test.sh does) or set TRACER_RELEASE_BIN",
        path.display()
    );
    path
}

/// A `tracer` command (the binary under test, [`tracer_bin`]).
pub fn tracer() -> Command {
    Command::new(tracer_bin())
}

/// True when running as root. Otherwise prints why the test is skipped; under CI a
/// privileged test that cannot run is a failure, not a skip.
pub fn require_root() -> bool {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "privileged test run without root under CI"
    );
    eprintln!("skipped: needs root (run the README's test command)");
    false
}

/// How many times longer than on bare metal a test may wait for something prompt:
/// `TRACER_TEST_TIME_SCALE`, which `cargo xtask kernels` sets in a VM under TCG emulation
/// (everything there runs several times slower); 1 otherwise.
pub fn time_scale() -> u32 {
    std::env::var("TRACER_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// `duration` stretched by [`time_scale`].
pub fn scaled(duration: std::time::Duration) -> std::time::Duration {
    duration * time_scale()
}

/// Polls `done` until it holds; panics naming `what` after `timeout` ([`scaled`]).
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let timeout = scaled(timeout);
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs a command, panics with its output if it fails, returns stdout.
pub fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two network namespaces joined by a veth pair, `10.250.<n>.1/24` ↔ `10.250.<n>.2/24`.
/// Names carry the test's tag and the process id (`trt<pid><tag>a`), so they cannot
/// collide with the lab or with a parallel run. Dropping it deletes both namespaces,
/// which deletes the veth pair with them.
pub struct NetnsPair {
    pub netns_a: String,
    pub netns_b: String,
    pub if_a: String,
    pub if_b: String,
    pub addr_a: Ipv4Addr,
    pub addr_b: Ipv4Addr,
}

impl NetnsPair {
    pub fn create(tag: &str) -> Self {
        let pid = std::process::id();
        let subnet = u8::try_from(pid % 200).unwrap() + 20;
        let pair = Self {
            netns_a: format!("trt{pid}{tag}a"),
            netns_b: format!("trt{pid}{tag}b"),
            if_a: format!("trt{pid}{tag}a"),
            if_b: format!("trt{pid}{tag}b"),
            addr_a: Ipv4Addr::new(10, 250, subnet, 1),
            addr_b: Ipv4Addr::new(10, 250, subnet, 2),
        };
        // Construct the guard before the first command, so a failure part-way cleans up.
        run(&["ip", "netns", "add", &pair.netns_a]);
        run(&["ip", "netns", "add", &pair.netns_b]);
        run(&[
            "ip",
            "-n",
            &pair.netns_a,
            "link",
            "add",
            &pair.if_a,
            "type",
            "veth",
            "peer",
            "name",
            &pair.if_b,
            "netns",
            &pair.netns_b,
        ]);
        for (ns, iface, addr) in [
            (&pair.netns_a, &pair.if_a, pair.addr_a),
            (&pair.netns_b, &pair.if_b, pair.addr_b),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                iface,
            ]);
            run(&["ip", "-n", ns, "link", "set", iface, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    pub fn netns_path_a(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.netns_a))
    }

    pub fn netns_path_b(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.netns_b))
    }

    /// Runs a command inside namespace A.
    pub fn exec_a(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.netns_a];
        full.extend_from_slice(argv);
        run(&full)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.netns_a, &self.netns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child process killed (and reaped) when the guard is dropped, also when a test fails.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the tracer binary as user `nobody` with no capabilities (`setpriv`).
pub fn tracer_as_nobody<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(tracer_bin())
        .args(args)
        .output()
        .expect("setpriv")
}

/// The host's own network state — interfaces, addresses, routes, iptables and nftables
/// rules, qdiscs — without what changes by itself (counters): a test takes it before and
/// after, and the two must be equal (nothing of a test may leak into the host).
pub fn host_snapshot() -> String {
    let mut snapshot = String::new();
    for argv in [
        &["ip", "-o", "addr"][..],
        &["ip", "route", "show", "table", "all"],
        &["ip", "-o", "link"],
        &["iptables-save"],
        &["nft", "list", "ruleset"],
        &["tc", "qdisc", "show"],
    ] {
        let text = run(argv);
        let stable: Vec<_> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l))
            .map(|l| l.split(" counter packets ").next().unwrap_or(l).to_owned())
            .collect();
        snapshot.push_str(&stable.join("\n"));
    }
    snapshot
}
