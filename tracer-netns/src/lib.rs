//! Running code inside a network namespace without moving the whole process.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling thread only, and netlink
//! sockets, `if_nametoindex` and TCX attachment all act in the caller's namespace. So each
//! piece of work that belongs to another namespace runs on a short-lived thread that enters
//! it first; the main thread never moves.
//!
//! A crate of its own because both `tracer` (discovery, attachment, `doctor`) and
//! `tracer-lab` (sysctls, the Pods' servers) need it, and neither depends on the other's
//! internals.

use std::{fs::File, io, os::fd::AsRawFd, path::Path, thread};

/// Runs `work` on a thread inside the network namespace at `path` (e.g.
/// `/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn run_in<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let ns = File::open(path)?;
    join(thread::spawn(move || {
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(work())
    }))
}

/// Like [`run_in`], for work that borrows from the caller (it runs on a scoped thread and is
/// joined before this returns): e.g. attaching a program of an `Ebpf` the caller keeps.
pub fn run_in_scoped<T: Send>(path: &Path, work: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(path)?;
    thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: plain syscall on an fd we own; affects only this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `work` on a thread inside a brand-new, empty network namespace (only `lo`), which
/// the kernel destroys with everything in it when the thread ends.
pub fn run_in_fresh<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    join(thread::spawn(move || {
        // SAFETY: plain syscall; affects only this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(work())
    }))
}

/// Like [`run_in_fresh`], for work that borrows from the caller (joined before this
/// returns): e.g. probing with a program of an `Ebpf` the caller keeps.
pub fn run_in_fresh_scoped<T: Send>(work: impl FnOnce() -> T + Send) -> io::Result<T> {
    thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: plain syscall; affects only this thread.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn join<T>(handle: thread::JoinHandle<io::Result<T>>) -> io::Result<T> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The cookie of the calling thread's network namespace: the value `bpf_get_netns_cookie`
/// returns for packets there.
pub fn current_cookie() -> io::Result<u64> {
    // SAFETY: socket/getsockopt/close on an fd we own, with correctly sized buffers.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cookie: u64 = 0;
        let mut len = size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        );
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
        Ok(cookie)
    }
}

/// Index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c_name = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Sets interface `name` up in the calling thread's namespace (used on `lo` of a fresh
/// namespace, which starts down).
pub fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: ioctl on an fd we own with a zeroed, correctly sized ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src.cast_signed();
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw mut req);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 { Err(err) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scoped_work_borrows_and_runs_in_the_namespace() {
        assert!(super::run_in_scoped(std::path::Path::new("/nonexistent"), || ()).is_err());
        // Entering a namespace, even one's own, takes CAP_SYS_ADMIN.
        // SAFETY: trivial syscall.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let mut seen = Vec::new();
        let here = super::current_cookie().unwrap();
        let cookie = super::run_in_scoped(std::path::Path::new("/proc/self/ns/net"), || {
            seen.push(1);
            super::current_cookie().unwrap()
        })
        .unwrap();
        assert_eq!((cookie, seen), (here, vec![1]));
    }

    #[test]
    fn the_current_namespace_has_a_cookie() {
        let cookie = super::current_cookie().expect("SO_NETNS_COOKIE (Linux 5.14+)");
        assert_ne!(cookie, 0);
        assert_eq!(super::current_cookie().unwrap(), cookie);
    }
}
