//! Developer tasks. `cargo xtask bench` measures tracer side by side with the alternative
//! people already have (tcpdump) on the built-in lab and writes `docs/benchmarks.md`.
//! Every figure comes from this one run on this machine; ratios are medians of repeated
//! runs. Needs root (it builds the lab and loads eBPF programs).

mod bench;
mod fuzz;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        _ => bail!(
            "usage: cargo xtask bench [--quick] | fuzz [--seconds N]\n  bench   measure the data-path tax, kernel cost per hop, pipeline rate, loss, recording size, replay and start-up; write docs/benchmarks.md\n  fuzz    fuzz the recording reader (cargo-fuzz, nightly) from fuzz/corpus/reader"
        ),
    }
}
