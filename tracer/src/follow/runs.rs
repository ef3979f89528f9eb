//! Which `follow` runs are alive, and what each one hooked with netlink filters.
//!
//! Netlink filters outlive a killed process, so every run that adds them keeps a record in
//! [`RUN_DIR`] (`/run`: gone after a reboot, as the filters are): one file per run, holding
//! an exclusive `flock` for as long as the process lives. The kernel drops that lock when
//! the process dies, however it dies, so a record whose lock can be taken belongs to a dead
//! run. The record lists
//! - `prog ID`: the classifiers the run loaded. A tracer filter running one of these is a
//!   live run's and is never removed by anyone else;
//! - `hook DEV INO PATH IFACE`: each interface it is about to hook (written before the
//!   filter is added, so a kill in between loses nothing), in the namespace with that
//!   device and inode (the path alone may name another namespace later);
//! - `qdisc DEV INO PATH IFACE`: each clsact qdisc it created, to be removed once empty.
//!
//! A record is written under a temporary name, locked, then renamed into place, so no other
//! run ever sees an unlocked record of a live run.

use std::{
    collections::BTreeSet,
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

/// Where run records live.
pub const RUN_DIR: &str = "/run/tracer/runs";

/// A namespace as a record names it: the path it was entered by and its identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetnsRef {
    pub dev: u64,
    pub ino: u64,
    pub path: String,
}

impl NetnsRef {
    pub fn of(path: &str) -> io::Result<Self> {
        let meta = fs::metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            path: path.to_owned(),
        })
    }

    /// Whether `path` still leads to this namespace.
    pub fn still_at_path(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

/// An interface in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub netns: NetnsRef,
    pub interface: String,
}

/// What one record says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunContents {
    pub programs: BTreeSet<u32>,
    pub hooked: BTreeSet<Place>,
    pub qdiscs: BTreeSet<Place>,
}

impl RunContents {
    pub fn parse(text: &str) -> Self {
        let mut contents = Self::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["prog", id] => {
                    if let Ok(id) = id.parse() {
                        contents.programs.insert(id);
                    }
                }
                [kind @ ("hook" | "qdisc"), dev, ino, path, interface] => {
                    let (Ok(dev), Ok(ino)) = (dev.parse(), ino.parse()) else {
                        continue;
                    };
                    let place = Place {
                        netns: NetnsRef {
                            dev,
                            ino,
                            path: (*path).to_owned(),
                        },
                        interface: (*interface).to_owned(),
                    };
                    if *kind == "hook" {
                        contents.hooked.insert(place);
                    } else {
                        contents.qdiscs.insert(place);
                    }
                }
                _ => {}
            }
        }
        contents
    }
}

fn place_line(kind: &str, place: &Place) -> String {
    format!(
        "{kind} {} {} {} {}\n",
        place.netns.dev, place.netns.ino, place.netns.path, place.interface
    )
}

/// This process's record; removed when dropped (after its filters are gone).
#[derive(Debug)]
pub struct RunRecord {
    file: File,
    path: PathBuf,
}

/// `flock(LOCK_EX | LOCK_NB)`: true if taken, false if another open file holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

impl RunRecord {
    /// Creates and locks this run's record in `dir`, naming the programs it loaded.
    pub fn create(dir: &Path, programs: &[u32]) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let started = crate::clock::monotonic_ns();
        let name = format!("{}-{started}", std::process::id());
        let temporary = dir.join(format!(".{name}"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&temporary)?;
        if !try_lock(&file)? {
            return Err(io::Error::other(
                "a fresh run record is locked by someone else",
            ));
        }
        for id in programs {
            writeln!(file, "prog {id}")?;
        }
        file.sync_data()?;
        let path = dir.join(name);
        fs::rename(&temporary, &path)?;
        Ok(Self { file, path })
    }

    /// Notes an interface about to be hooked (before the filter exists).
    pub fn note_hook(&mut self, place: &Place) -> io::Result<()> {
        self.file.write_all(place_line("hook", place).as_bytes())?;
        self.file.sync_data()
    }

    /// Notes a clsact qdisc this run created.
    pub fn note_qdisc(&mut self, place: &Place) -> io::Result<()> {
        self.file.write_all(place_line("qdisc", place).as_bytes())?;
        self.file.sync_data()
    }
}

impl Drop for RunRecord {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Every record in `dir`, read once: the programs of live runs, and the dead runs (with the
/// lock held, so no two cleanups work on one) to clean up after.
#[derive(Debug, Default)]
pub struct Survey {
    pub live_programs: BTreeSet<u32>,
    pub dead: Vec<DeadRun>,
}

/// A dead run's record, locked by this process until [`DeadRun::forget`].
#[derive(Debug)]
pub struct DeadRun {
    pub contents: RunContents,
    pub path: PathBuf,
    _lock: File,
}

impl DeadRun {
    /// Removes the record once what it names is cleaned up.
    pub fn forget(self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}

/// Reads every record in `dir`; a missing directory means no run ever hooked by netlink.
pub fn survey(dir: &Path) -> io::Result<Survey> {
    let mut survey = Survey::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(survey),
        Err(e) => return Err(e),
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        // Records being written (`.NAME`) belong to runs starting now, which are alive.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let contents = RunContents::parse(&fs::read_to_string(&path).unwrap_or_default());
        if try_lock(&file)? {
            survey.dead.push(DeadRun {
                contents,
                path,
                _lock: file,
            });
        } else {
            survey.live_programs.extend(contents.programs);
        }
    }
    Ok(survey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tracer-runs-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_record_reads_back_what_was_written() {
        let place = Place {
            netns: NetnsRef {
                dev: 4,
                ino: 4_026_531_840,
                path: "/run/netns/cpu1".into(),
            },
            interface: "enp2s0".into(),
        };
        let text = format!(
            "prog 17\nprog 18\n{}{}garbage line\n",
            place_line("hook", &place),
            place_line("qdisc", &place)
        );
        let contents = RunContents::parse(&text);
        assert_eq!(contents.programs, BTreeSet::from([17, 18]));
        assert_eq!(contents.hooked, BTreeSet::from([place.clone()]));
        assert_eq!(contents.qdiscs, BTreeSet::from([place]));
    }

    #[test]
    fn a_live_record_protects_its_programs_and_a_dropped_one_is_gone() {
        let dir = temp_dir("live");
        let mut record = RunRecord::create(&dir, &[7, 8]).unwrap();
        let place = Place {
            netns: NetnsRef::of("/proc/self/ns/net").unwrap(),
            interface: "lo".into(),
        };
        record.note_hook(&place).unwrap();
        // This process holds the lock through another open file: the record is live.
        let survey = survey(&dir).unwrap();
        assert_eq!(survey.live_programs, BTreeSet::from([7, 8]));
        assert!(survey.dead.is_empty());
        drop(record);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unlocked_record_is_a_dead_run() {
        let dir = temp_dir("dead");
        fs::create_dir_all(&dir).unwrap();
        // What a killed run leaves: a record nobody holds a lock on.
        fs::write(dir.join("4242-1"), "prog 9\nhook 1 2 /run/netns/x eth0\n").unwrap();
        let survey = survey(&dir).unwrap();
        assert!(survey.live_programs.is_empty());
        assert_eq!(survey.dead.len(), 1);
        assert_eq!(survey.dead[0].contents.programs, BTreeSet::from([9]));
        assert_eq!(survey.dead[0].contents.hooked.len(), 1);
        // While one cleanup holds it, another sees it as taken (not dead twice).
        assert!(super::survey(&dir).unwrap().dead.is_empty());
        survey.dead.into_iter().for_each(|d| d.forget().unwrap());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
