//! Developer tasks. `cargo xtask bench` measures tracer side by side with the alternative
//! people already have (tcpdump) on the built-in lab and writes `docs/benchmarks.md`.
//! Every figure comes from this one run on this machine; ratios are medians of repeated
//! runs. Needs root (it builds the lab and loads eBPF programs).

mod bench;
mod fuzz;
mod image;
mod kernels;
mod soak;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::bail;

/// Checks that we run as root (`task` builds a lab and loads eBPF programs), builds the
/// release `tracer` and returns the workspace root and the binary's path.
fn root_and_release_tracer(task: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask {task} builds a lab and loads eBPF programs: run it as root");
    }
    release_tracer()
}

/// Builds the release `tracer`; returns the workspace root and the binary's path.
fn release_tracer() -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new("cargo")
        .args(["build", "--release", "--bin", "tracer"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    // Where that build put it: CARGO_TARGET_DIR when set (as cargo itself reads it).
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let tracer = target.join("release/tracer").canonicalize()?;
    Ok((root, tracer))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("vm") => vm::command(&args[1..]),
        Some("kernels") => kernels::run(&args[1..]),
        Some("image") => image::run(&args[1..]),
        Some("synth") => match &args[1..] {
            [seed, out, hops] => {
                let written = bench::replicate(seed.as_ref(), out.as_ref(), hops.parse()?)?;
                eprintln!("wrote {written} observations to {out}");
                Ok(())
            }
            _ => bail!("usage: cargo xtask synth SEED.trace OUT.trace HOPS"),
        },
        _ => bail!(
            "usage: cargo xtask bench [--quick] [--versus OLD_TRACER] [--section tax|kernel|pipeline|startup] | fuzz [--seconds N | --seed-only] | soak [--minutes N] | synth SEED OUT HOPS | vm --kernel K -- CMD | kernels [--kernel K]... [--smoke] [--docs] | image [--out FILE] [--tag REF] [--tracer BIN]\n  bench   measure the data-path tax, kernel cost per hop, pipeline rate, loss, recording size, replay and start-up; write docs/benchmarks.md; --versus: only the kernel cost per hop, this build against another tracer binary, printed; --section: one section, printed\n  fuzz    fuzz the recording reader (cargo-fuzz, nightly) from fuzz/corpus/reader; --seed-only: only write the current format's seeds there\n  soak    a live follow in the terminal UI under steady traffic for N minutes (default 60): memory, CPU, clean exit; write docs/soak.md\n  synth   a large recording made of copies of a real one (for benchmarks)\n  vm      boot a kernel from scripts/setup.sh in a VM sharing this filesystem and run CMD there as root\n  kernels the kernel matrix: doctor and the privileged tests in a VM per kernel; --smoke: the few that show follow works; --docs: write docs/kernels.md\n  image   the agent's OCI image archive (tracer and the tools it runs), for ctr/docker load and registries"
        ),
    }
}
