//! `cargo xtask kernels`: the kernel matrix. For each kernel `scripts/setup.sh` unpacked
//! (or each `--kernel`), one VM ([`crate::vm`]) runs `tracer doctor` and the privileged
//! end-to-end tests, built once here (release: under TCG emulation a debug build is too
//! slow for the tests' time limits, e.g. the 10 s for the first cluster snapshot) and run
//! there from this machine's filesystem. Prints one line per kernel and test binary;
//! `--smoke` runs only the tests that show `follow` works on that kernel (the healthy
//! Service path, the seed's incident, netlink leftovers, doctor against follow, UDP payloads
//! read alike by every parser, a sampled stream), which is
//! what `scripts/test.sh` runs on 6.1; `--suite NAME` only that test binary of the matrix
//! (repeatable, to iterate on one hook); `--docs` writes `docs/kernels.md` from the run.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::vm::{self, Kernel, VmOptions, shell_quote};

/// Test binaries and the tests of each to run; an empty list runs all of the binary's.
type Selection = &'static [(&'static str, &'static [&'static str])];

/// What shows `follow` working on a kernel (issue #12's acceptance).
const SMOKE: Selection = &[
    (
        "follow",
        &[
            "healthy_service_requests_show_veth_dnat_route_delivery_and_undnat",
            "wrong_interface_reply_dies_on_cpu1_for_want_of_a_route",
        ],
    ),
    ("attach", &[]),
    ("cli", &["doctor_finds_what_this_kernel_allows_by_trying"]),
    // Four tracers on one lab at once (three node agents and a follow), and the route
    // hook's namespace check.
    (
        "agents",
        &["the_seed_incident_from_three_node_recordings_stitched"],
    ),
    // Every kernel read of a packet on this kernel's verifier and `sk_buff`s; the two ring
    // buffers (a drop after a flood).
    (
        "kernel_events",
        &[
            "udp_payloads_are_hashed_alike_wherever_they_are_read",
            "a_drop_in_a_flood_that_overflows_the_ring_buffer_still_arrives",
        ],
    ),
    // Sampling: counting in a per-CPU hash map, every hook's same choice, on this
    // kernel's verifier.
    ("sampling", &[]),
];

/// The privileged end-to-end tests that exercise the kernel side (the TUI, API and churn
/// suites add nothing kernel-specific and take long under emulation).
const MATRIX: Selection = &[
    ("kernel_events", &[]),
    ("sampling", &[]),
    ("follow", &[]),
    ("attach", &[]),
    ("record", &[]),
    ("bridge_cni", &[]),
    ("cli", &[]),
    ("drop_no_reason", &[]),
    ("route_hook", &[]),
    ("nat_hook", &[]),
    ("agents", &[]),
];

/// How much longer the tests may wait under TCG: follow's start-up (lab of 13 namespaces,
/// netlink mode, release build) took about 60 s in a TCG VM here against 0.9 s on the
/// host; the tests' 30 s start deadline becomes 240 s.
const TCG_TIME_SCALE: u32 = 8;

/// One test binary's result in one kernel.
#[derive(Debug)]
struct TestRun {
    binary: &'static str,
    passed: u32,
    failed: u32,
    status: i32,
    log: PathBuf,
}

/// One kernel's row.
#[derive(Debug)]
struct KernelRun {
    kernel: Kernel,
    accel: vm::Accel,
    elapsed: Duration,
    doctor: Option<Value>,
    tests: Vec<TestRun>,
}

impl KernelRun {
    fn ok(&self) -> bool {
        self.doctor.is_some()
            && !self.tests.is_empty()
            && self
                .tests
                .iter()
                .all(|t| t.status == 0 && t.failed == 0 && t.passed > 0)
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    let mut smoke = false;
    let mut docs = false;
    let mut suites: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--kernel" => wanted.push(it.next().context("--kernel KERNEL")?.clone()),
            "--smoke" => smoke = true,
            "--docs" => docs = true,
            "--suite" => suites.push(it.next().context("--suite NAME")?.clone()),
            other => bail!(
                "usage: cargo xtask kernels [--kernel K]... [--smoke | --suite NAME...] [--docs] (unknown {other})"
            ),
        }
    }
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask kernels boots VMs that build labs and load eBPF programs: run it as root"
        );
    }
    let kernels = if wanted.is_empty() {
        vm::installed()
    } else {
        wanted
            .iter()
            .map(|k| vm::find(k))
            .collect::<anyhow::Result<_>>()?
    };
    if kernels.is_empty() {
        bail!(
            "no kernels in {}: run scripts/setup.sh",
            vm::kernels_dir().display()
        );
    }
    if docs && (smoke || !suites.is_empty()) {
        bail!("--docs describes the whole matrix: not with --smoke or --suite");
    }
    let selection: Selection = if smoke {
        SMOKE
    } else if suites.is_empty() {
        MATRIX
    } else {
        for suite in &suites {
            if !MATRIX.iter().any(|(binary, _)| binary == suite) {
                bail!("--suite {suite}: not a test binary of the matrix");
            }
        }
        // A short-lived command: the selection lives as long as the run.
        Box::leak(
            MATRIX
                .iter()
                .filter(|(binary, _)| suites.iter().any(|s| s == binary))
                .copied()
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let commit = built_from(&root);
    let (tracer, binaries) = build_tests(&root, selection)?;
    let out_root = target_dir(&root)?.join("kernels");
    let mut rows = Vec::new();
    for kernel in kernels {
        let out = out_root.join(&kernel.release);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        // Under emulation everything runs several times slower: the tests' deadlines for
        // prompt things (follow's start-up, in-flight packets settling) stretch with it.
        let time_scale = match vm::accel(&kernel) {
            vm::Accel::Kvm => 1,
            vm::Accel::Tcg => TCG_TIME_SCALE,
        };
        let script = guest_script(&tracer, &binaries, selection, &out, time_scale);
        std::fs::write(out.join("guest.sh"), script)?;
        eprintln!("[kernels] {}: booting", kernel.release);
        let vm_run = vm::run(
            &kernel,
            &format!(
                "bash {}",
                shell_quote(&out.join("guest.sh").display().to_string())
            ),
            &root,
            &VmOptions {
                writable: vec![out.clone()],
                console: Some(out.join("console.log")),
                ..VmOptions::default()
            },
        )?;
        let row = collect(kernel, vm_run.accel, vm_run.elapsed, &out, selection);
        eprintln!("{}", summary_line(&row));
        rows.push(row);
    }
    if docs {
        let command = format!("cargo xtask kernels {}", args.join(" "));
        let text = render_docs(&host_run(&tracer), &rows, command.trim_end(), &commit);
        std::fs::write(root.join("docs/kernels.md"), text)?;
        eprintln!("[kernels] wrote docs/kernels.md");
    }
    if rows.iter().all(KernelRun::ok) {
        Ok(())
    } else {
        bail!("some kernel failed (logs under {})", out_root.display())
    }
}

fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from))
}

/// The executables of `compiler-artifact` messages in cargo's JSON output: `(target name,
/// kinds, path)`.
fn artifacts(stdout: &[u8]) -> Vec<(String, Vec<String>, PathBuf)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let executable = m["executable"].as_str()?;
            let name = m["target"]["name"].as_str()?.to_owned();
            let kinds = m["target"]["kind"]
                .as_array()?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            Some((name, kinds, PathBuf::from(executable)))
        })
        .collect()
}

fn cargo_json(root: &Path, args: &[&str]) -> anyhow::Result<Vec<(String, Vec<String>, PathBuf)>> {
    let out = Command::new("cargo")
        .args(args)
        .arg("--message-format=json")
        .current_dir(root)
        .output()
        .with_context(|| format!("cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "cargo {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(artifacts(&out.stdout))
}

/// Builds the tracer binary and the selected test binaries of `tracer-tests` (release),
/// returning their paths.
fn build_tests(
    root: &Path,
    selection: Selection,
) -> anyhow::Result<(PathBuf, Vec<(&'static str, PathBuf)>)> {
    let tracer = cargo_json(
        root,
        &["build", "--release", "-p", "tracer", "--bin", "tracer"],
    )?
    .into_iter()
    .find(|(name, kinds, _)| name == "tracer" && kinds.iter().any(|k| k == "bin"))
    .map(|(_, _, path)| path)
    .context("cargo build did not name the tracer binary")?;
    let mut args = vec!["test", "--release", "--no-run", "-p", "tracer-tests"];
    for (binary, _) in selection {
        args.extend(["--test", binary]);
    }
    let binaries = cargo_json(root, &args)?
        .into_iter()
        .filter_map(|(name, kinds, path)| {
            let (binary, _) = selection.iter().find(|(b, _)| *b == name)?;
            kinds.iter().any(|k| k == "test").then_some((*binary, path))
        })
        .collect();
    Ok((tracer, binaries))
}

/// The script the guest runs: doctor, then each test binary, every output into `out`.
fn guest_script(
    tracer: &Path,
    binaries: &[(&'static str, PathBuf)],
    selection: Selection,
    out: &Path,
    time_scale: u32,
) -> String {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let mut script = String::from(
        "# Written by cargo xtask kernels; runs inside the VM as root.\nset -u\nexport CI=true\n",
    );
    let _ = writeln!(script, "export TRACER_TEST_TIME_SCALE={time_scale}");
    let _ = writeln!(script, "export TRACER_BIN={}", q(tracer));
    let out_q = q(out);
    let _ = writeln!(script, "uname -r > {out_q}/uname");
    let _ = writeln!(
        script,
        "{} doctor --output json > {out_q}/doctor.json 2> {out_q}/doctor.err",
        q(tracer)
    );
    let _ = writeln!(script, "{} doctor > {out_q}/doctor.txt 2>&1", q(tracer));
    for (binary, path) in binaries {
        let filters = selection
            .iter()
            .find(|(b, _)| b == binary)
            .map(|(_, f)| f.join(" "))
            .unwrap_or_default();
        let _ = writeln!(
            script,
            "{} --test-threads=1 --exact {filters} > {out_q}/test-{binary}.log 2>&1; echo $? > {out_q}/test-{binary}.status",
            q(path)
        );
    }
    script
}

fn read_status(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1)
}

/// `test result: ok. 3 passed; 0 failed; …` lines of a libtest log, summed.
fn passed_failed(log: &str) -> (u32, u32) {
    let mut totals = (0, 0);
    for line in log.lines().filter(|l| l.starts_with("test result:")) {
        let number_before = |word: &str| {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1)?.parse::<u32>().ok())
                .unwrap_or(0)
        };
        totals.0 += number_before("passed");
        totals.1 += number_before("failed");
    }
    totals
}

fn collect(
    kernel: Kernel,
    accel: vm::Accel,
    elapsed: Duration,
    out: &Path,
    selection: Selection,
) -> KernelRun {
    let doctor = std::fs::read_to_string(out.join("doctor.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let tests = selection
        .iter()
        .map(|(binary, _)| {
            let log = out.join(format!("test-{binary}.log"));
            let (passed, failed) =
                passed_failed(&std::fs::read_to_string(&log).unwrap_or_default());
            TestRun {
                binary,
                passed,
                failed,
                status: read_status(&out.join(format!("test-{binary}.status"))),
                log,
            }
        })
        .collect();
    KernelRun {
        kernel,
        accel,
        elapsed,
        doctor,
        tests,
    }
}

fn summary_line(row: &KernelRun) -> String {
    let mode = row
        .doctor
        .as_ref()
        .and_then(|d| d["attach_mode"].as_str())
        .unwrap_or("?");
    let tests: Vec<String> = row
        .tests
        .iter()
        .map(|t| {
            format!(
                "{} {}/{}{}",
                t.binary,
                t.passed,
                t.passed + t.failed,
                if t.status == 0 { "" } else { " FAILED" }
            )
        })
        .collect();
    format!(
        "[kernels] {} ({}, {:.0} s): attach mode {mode}; {}{}",
        row.kernel.release,
        row.accel.name(),
        row.elapsed.as_secs_f64(),
        tests.join(", "),
        if row.ok() { "" } else { " — see the logs" }
    )
}

fn check_status(doctor: &Value, name: &str) -> &'static str {
    let available = doctor["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == name && c["status"] == "available");
    if available { "yes" } else { "no" }
}

/// This machine's own kernel, for the matrix's first row: `tracer doctor` run here with
/// the same build. Its tests are not run by this command: `scripts/test.sh` runs them all.
struct HostRun {
    release: String,
    doctor: Option<Value>,
}

fn host_run(tracer: &Path) -> HostRun {
    let doctor = Command::new(tracer)
        .args(["doctor", "--output", "json"])
        .output()
        .ok()
        .and_then(|out| serde_json::from_slice(&out.stdout).ok());
    HostRun {
        release: vm::host_release(),
        doctor,
    }
}

/// `git describe` of the tree the binaries were built from (`-dirty` if it had changes).
fn built_from(root: &Path) -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
}

fn render_docs(host: &HostRun, rows: &[KernelRun], command: &str, commit: &str) -> String {
    let mut doc = String::from(
        "# Kernel matrix\n\nGenerated by `cargo xtask kernels` from a real run: each kernel booted in a VM\n(virtme-ng, this machine's filesystem) running `tracer doctor` and the privileged\nend-to-end tests. Kernels are Debian's packages, unpacked by `scripts/setup.sh`. The\nfirst row is this machine's own kernel: `tracer doctor` only, as `scripts/test.sh` runs\nevery test there.\n\n",
    );
    let _ = writeln!(doc, "Command: `{command}`, built from `{commit}`.\n");
    let _ = writeln!(
        doc,
        "| kernel | VM | attach mode | TCX | netlink | tp_btf | kprobe | fentry | ring buffer | follow works | tests |"
    );
    let _ = writeln!(doc, "|---|---|---|---|---|---|---|---|---|---|---|");
    let empty = Value::Null;
    table_row(
        &mut doc,
        &format!("{} (this machine)", host.release),
        "none",
        host.doctor.as_ref().unwrap_or(&empty),
        "all, by `scripts/test.sh`",
    );
    for row in rows {
        let tests: Vec<String> = row
            .tests
            .iter()
            .map(|t| format!("{} {}/{}", t.binary, t.passed, t.passed + t.failed))
            .collect();
        table_row(
            &mut doc,
            &row.kernel.release,
            &format!("{} ({:.0} s)", row.accel.name(), row.elapsed.as_secs_f64()),
            row.doctor.as_ref().unwrap_or(&empty),
            &tests.join(", "),
        );
    }
    if let Some(d) = &host.doctor {
        doctor_section(&mut doc, &format!("{} (this machine)", host.release), d);
    }
    for row in rows {
        let Some(d) = &row.doctor else { continue };
        doctor_section(&mut doc, &row.kernel.release, d);
        for t in &row.tests {
            if t.status != 0 {
                let _ = writeln!(
                    doc,
                    "\n`{}` failed here (exit {}); its log was {}.",
                    t.binary,
                    t.status,
                    t.log.display()
                );
            }
        }
    }
    doc
}

fn table_row(doc: &mut String, kernel: &str, vm: &str, d: &Value, tests: &str) {
    let _ = writeln!(
        doc,
        "| {kernel} | {vm} | {} | {} | {} | {} | {} | {} | {} | {} | {tests} |",
        d["attach_mode"].as_str().unwrap_or("none"),
        check_status(d, "tc_tcx"),
        check_status(d, "tc_netlink"),
        check_status(d, "tp_btf"),
        check_status(d, "kprobe"),
        check_status(d, "fentry"),
        check_status(d, "ring_buffer"),
        d["follow_works"],
    );
}

/// One kernel's hooks, hops and checks, as its `tracer doctor` reported them.
fn doctor_section(doc: &mut String, title: &str, d: &Value) {
    let _ = writeln!(doc, "\n## {title}\n");
    let hooks: Vec<String> = d["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "`{}` ({})",
                h["program"].as_str().unwrap_or("?"),
                h["attach"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let _ = writeln!(doc, "Hooks `follow` uses: {}.\n", hooks.join(", "));
    let _ = writeln!(doc, "| hop | here | how |\n|---|---|---|");
    for hop in d["hops"].as_array().into_iter().flatten() {
        let _ = writeln!(
            doc,
            "| `{}` | {} | {} |",
            hop["kind"].as_str().unwrap_or("?"),
            hop["visibility"].as_str().unwrap_or("?"),
            hop["how"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(doc, "\nChecks (`tracer doctor`, by trying):\n");
    for check in d["checks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            doc,
            "- `{}`: {} — {}",
            check["name"].as_str().unwrap_or("?"),
            check["status"].as_str().unwrap_or("?"),
            check["detail"].as_str().unwrap_or("").trim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_summaries_are_summed() {
        let log = "running 2 tests\ntest a ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out; finished in 9.1s\n\
                   test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s\n";
        assert_eq!(passed_failed(log), (3, 1));
        assert_eq!(passed_failed("no tests here"), (0, 0));
    }

    #[test]
    fn the_docs_open_with_this_machines_kernel_and_the_commit() {
        let doctor = serde_json::json!({
            "attach_mode": "tcx",
            "follow_works": true,
            "checks": [{"name": "tc_tcx", "status": "available", "detail": "loaded"},
                       {"name": "kprobe", "status": "unavailable", "detail": "no kprobes"}],
            "hooks": [{"program": "tc_ingress", "attach": "tcx"}],
            "hops": [{"kind": "service_dnat", "visibility": "inferred", "how": "headers"}],
        });
        let host = HostRun {
            release: "6.18.0".to_owned(),
            doctor: Some(doctor),
        };
        let doc = render_docs(&host, &[], "cargo xtask kernels --docs", "abc1234");
        assert!(doc.contains("built from `abc1234`"), "{doc}");
        assert!(
            doc.contains("| 6.18.0 (this machine) | none | tcx | yes | no | no | no | no | no | true | all, by `scripts/test.sh` |"),
            "{doc}"
        );
        assert!(doc.contains("## 6.18.0 (this machine)"), "{doc}");
        assert!(
            doc.contains("| `service_dnat` | inferred | headers |"),
            "{doc}"
        );
        assert!(
            doc.contains("- `kprobe`: unavailable — no kprobes"),
            "{doc}"
        );
    }
}
