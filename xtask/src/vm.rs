//! `cargo xtask vm --kernel KERNEL -- COMMAND`: boots one of the kernels `scripts/setup.sh`
//! unpacked from Debian's packages in a VM that shares this machine's filesystem
//! (virtme-ng: `/` read-only over 9p, writable overlays where programs expect to write,
//! the kernel's own modules from its package), runs COMMAND there as root and returns its
//! exit status and output.
//!
//! KVM is used when it really works here, found out by booting the kernel under KVM and
//! waiting a few seconds for its first console line (a `/dev/kvm` that opens is not
//! enough: a nested hypervisor may accept a VM it cannot run). Otherwise TCG, software
//! emulation, several times slower. The answer is kept per host kernel in the kernels
//! directory; `TRACER_VM_ACCEL=kvm|tcg` overrides it.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Where `scripts/setup.sh` unpacks kernel packages (not under /var/cache or /tmp: the VM
/// puts fresh tmpfs mounts there).
pub fn kernels_dir() -> PathBuf {
    std::env::var_os("TRACER_KERNELS_DIR")
        .map_or_else(|| PathBuf::from("/opt/tracer/kernels"), PathBuf::from)
}

/// An unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-amd64`.
    pub release: String,
    pub image: PathBuf,
}

impl Kernel {
    /// `6.1`, `6.12`: what `--kernel` matches besides the full release.
    pub fn series(&self) -> String {
        self.release
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Every kernel unpacked in [`kernels_dir`], oldest series first.
pub fn installed() -> Vec<Kernel> {
    let mut kernels = Vec::new();
    let Ok(packages) = std::fs::read_dir(kernels_dir()) else {
        return kernels;
    };
    for package in packages.filter_map(Result::ok) {
        let Ok(boot) = std::fs::read_dir(package.path().join("boot")) else {
            continue;
        };
        for file in boot.filter_map(Result::ok) {
            let name = file.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                kernels.push(Kernel {
                    release: release.to_owned(),
                    image: file.path(),
                });
            }
        }
    }
    kernels.sort_by_key(|k| {
        k.release
            .split(['.', '-', '+'])
            .take(3)
            .map(|n| n.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    kernels
}

/// The installed kernel `wanted` names: a series (`6.1`) or a full release.
pub fn find(wanted: &str) -> anyhow::Result<Kernel> {
    let kernels = installed();
    kernels
        .iter()
        .find(|k| k.release == wanted || k.series() == wanted)
        .cloned()
        .with_context(|| {
            format!(
                "no kernel {wanted} in {} (have: {}); scripts/setup.sh installs them",
                kernels_dir().display(),
                kernels
                    .iter()
                    .map(|k| k.release.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Hardware virtualisation or software emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

pub fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// KVM if it boots `kernel` here, else TCG; see the module doc.
pub fn accel(kernel: &Kernel) -> Accel {
    match std::env::var("TRACER_VM_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    let cache = kernels_dir().join(format!("accel-{}", host_release()));
    match std::fs::read_to_string(&cache).as_deref().map(str::trim) {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    let found = if kvm_boots(kernel) {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    let _ = std::fs::write(&cache, found.name());
    found
}

/// Boots `kernel` under KVM with a serial console and waits up to 10 s for its banner.
fn kvm_boots(kernel: &Kernel) -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let Ok(mut qemu) = Command::new("qemu-system-x86_64")
        .args(["-machine", "accel=kvm", "-cpu", "host", "-m", "256M"])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ])
        .arg(&kernel.image)
        .args(["-append", "console=ttyS0 earlyprintk=serial panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut stdout = qemu.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0_u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("Linux version") {
                let _ = tx.send(());
                return;
            }
        }
    });
    let booted = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    let _ = qemu.kill();
    let _ = qemu.wait();
    booted
}

/// How a VM is set up.
#[derive(Debug, Clone)]
pub struct VmOptions {
    pub memory: String,
    pub cpus: u32,
    /// Directories the guest may write to (everything else is read-only or a throwaway
    /// overlay).
    pub writable: Vec<PathBuf>,
    /// Where the VM's console goes; none: this process's stdout and stderr. virtme-ng
    /// writes terminal control to it (and truncated a log file it was given as stdout), so
    /// unattended runs keep it apart.
    pub console: Option<PathBuf>,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            memory: "3G".to_owned(),
            cpus: 2,
            writable: Vec::new(),
            console: None,
        }
    }
}

/// What a command in a VM did.
#[derive(Debug)]
pub struct VmRun {
    pub accel: Accel,
    pub status: i32,
    pub elapsed: Duration,
}

/// Runs `command` (a shell command line) as root in a VM booted with `kernel`; its output
/// goes to this process's stdout and stderr.
pub fn run(
    kernel: &Kernel,
    command: &str,
    cwd: &Path,
    options: &VmOptions,
) -> anyhow::Result<VmRun> {
    let accel = accel(kernel);
    let mut vng = Command::new("vng");
    vng.arg("--run")
        .arg(&kernel.image)
        .args(["--user", "root", "--memory", &options.memory])
        .args(["--cpus", &options.cpus.to_string()])
        .arg("--cwd")
        .arg(cwd);
    for dir in &options.writable {
        vng.arg(format!("--rwdir={}", dir.display()));
    }
    if accel == Accel::Tcg {
        // `-cpu max` emulates every feature TCG can; virtme-ng's `-cpu host` needs KVM.
        vng.args(["--disable-kvm", "--qemu-opts=-cpu max"]);
    }
    vng.args(["--exec", command]).stdin(Stdio::null());
    if let Some(path) = &options.console {
        let console =
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        vng.stdout(console.try_clone()?).stderr(console);
    }
    let started = Instant::now();
    let status = vng
        .status()
        .context("run vng (virtme-ng; scripts/setup.sh installs it)")?;
    Ok(VmRun {
        accel,
        status: status.code().unwrap_or(-1),
        elapsed: started.elapsed(),
    })
}

/// `cargo xtask vm --kernel KERNEL [--memory 3G] [--cpus 2] [--rwdir DIR]... -- COMMAND...`
pub fn command(args: &[String]) -> anyhow::Result<()> {
    let Some(split) = args.iter().position(|a| a == "--") else {
        bail!(
            "usage: cargo xtask vm --kernel KERNEL [--memory 3G] [--cpus 2] [--rwdir DIR]... -- COMMAND...\n  kernels here: {}",
            installed()
                .iter()
                .map(|k| k.release.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let (options_args, command) = (&args[..split], &args[split + 1..]);
    let mut kernel = None;
    let mut options = VmOptions::default();
    let mut it = options_args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("a value after the option");
        match arg.as_str() {
            "--kernel" => kernel = Some(find(value()?)?),
            "--memory" => options.memory.clone_from(value()?),
            "--cpus" => options.cpus = value()?.parse()?,
            "--rwdir" => options.writable.push(PathBuf::from(value()?)),
            other => bail!("unknown option {other}"),
        }
    }
    let kernel = kernel.context("--kernel KERNEL is required (e.g. 6.1)")?;
    if command.is_empty() {
        bail!("no COMMAND after --");
    }
    let line = command
        .iter()
        .map(|word| shell_quote(word))
        .collect::<Vec<_>>()
        .join(" ");
    let cwd = std::env::current_dir()?;
    let run = run(&kernel, &line, &cwd, &options)?;
    eprintln!(
        "[vm] {} ({}): exit {} after {:.1} s (boot included)",
        kernel.release,
        run.accel.name(),
        run.status,
        run.elapsed.as_secs_f64()
    );
    std::process::exit(run.status);
}

/// `word` as one shell word.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_guest_shell() {
        assert_eq!(shell_quote("uname"), "uname");
        assert_eq!(shell_quote("-r"), "-r");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn kernels_are_named_by_series_or_release() {
        let k = Kernel {
            release: "6.12.117+deb12-amd64".into(),
            image: PathBuf::new(),
        };
        assert_eq!(k.series(), "6.12");
        let k = Kernel {
            release: "6.1.0-57-amd64".into(),
            image: PathBuf::new(),
        };
        assert_eq!(k.series(), "6.1");
    }
}
