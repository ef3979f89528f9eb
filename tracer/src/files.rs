//! Creating the files a user names (`follow --record FILE`, `export --pcapng OUT`) without
//! harming anything already on disk. Recordings and exports hold the same Pod names and
//! addresses, so both are private (mode 0600) and both follow these rules:
//!
//! - A new file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600: nothing that
//!   appears at the path in the meantime is ever opened instead.
//! - An existing regular file is refused unless `--force`. With `--force` a new private file
//!   is created beside it (same directory, `O_EXCL`) and renamed over it: the old file is
//!   never truncated or chmod-ed, and its other hard links keep the old content.
//! - A symbolic link at the path is refused, with or without `--force`: writing through it
//!   would change a file the user did not name, and replacing the link would surprise whoever
//!   made it. Name the file itself, or remove the link.
//! - The input is never the output: an existing target with the input's device and inode (the
//!   same path, another path to it, a hard link) is refused, also with `--force`.
//! - Streams, where the caller allows them ([`Streams::Allowed`]): `-` is stdout (refused
//!   when stdout is a terminal: the output is binary), and an existing FIFO or character
//!   device (a named pipe, `/dev/null`) is opened for writing as it is, never created or
//!   truncated; writing there replaces nothing. (bash's `noclobber` draws the same line.)
//!   Where streams are not allowed, `-` and non-regular files are refused.
//! - Directories, block devices and sockets are refused.
//!
//! A refusal ([`FileError::is_refusal`]) is a usage error (exit status 2) and changes nothing
//! on disk. Every other error names the path. A file created here and dropped before
//! [`Output::persist`] is removed again (an export that failed half-way leaves nothing).

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io::{self, IsTerminal as _},
    os::{
        fd::AsFd as _,
        unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// What to do when the target already exists as a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    Refuse,
    /// `--force`: replace it (a new file renamed over it).
    Replace,
}

impl Overwrite {
    pub fn from_force(force: bool) -> Self {
        if force { Self::Replace } else { Self::Refuse }
    }
}

/// Whether the output may be a stream (stdout, a pipe, a character device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    Allowed,
    Refused,
}

/// How a target may be created; see the module doc.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// What is written, for messages: "recording", "pcapng export".
    pub what: &'static str,
    pub overwrite: Overwrite,
    pub streams: Streams,
    /// The file being read, which must not be written.
    pub input: Option<&'a Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} already exists; pass --force to replace it, or choose another name", .path.display())]
    Exists { path: PathBuf },
    #[error(
        "{} is a symbolic link; tracer does not write through links (also not with --force): name the file itself, or remove the link", .path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{}; write the {what} to another file", is_input(.path, .input))]
    IsInput {
        path: PathBuf,
        input: PathBuf,
        what: &'static str,
    },
    #[error("{} is {kind}; name a file to write the {what} to", .path.display())]
    NotAFile {
        path: PathBuf,
        /// "a directory", "a block device", …
        kind: &'static str,
        what: &'static str,
    },
    #[error("a {what} is written to a file, not to stdout: name a file instead of `-`")]
    NoStdout { what: &'static str },
    #[error(
        "stdout is a terminal; a {what} is binary: redirect it (`> out.pcapng`) or pipe it (`| tshark -r -`)"
    )]
    Terminal { what: &'static str },
    /// An I/O failure; the cause is in the message (not a `source`, so it is printed once).
    #[error("cannot {action} {}: {cause}", shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
}

/// The path as messages show it: `-` is stdout.
pub fn shown(path: &Path) -> String {
    if is_stdout(path) {
        "stdout".to_owned()
    } else {
        path.display().to_string()
    }
}

fn is_input(path: &Path, input: &Path) -> String {
    if path == input {
        format!("{} is the file this command reads", path.display())
    } else {
        format!(
            "{} is the same file as {}, which this command reads",
            path.display(),
            input.display()
        )
    }
}

impl FileError {
    /// The I/O error behind a failure (not a refusal), e.g. to tell a closed pipe.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Io { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// True for the refusals: usage errors that changed nothing on disk.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    pub fn io(action: &'static str, path: &Path, cause: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            cause,
        }
    }
}

impl From<FileError> for io::Error {
    /// Keeps the [`FileError`] inside (recover it with [`FileError::from_io`]).
    fn from(error: FileError) -> Self {
        let kind = match &error {
            FileError::Io { cause, .. } => cause.kind(),
            FileError::Exists { .. } => io::ErrorKind::AlreadyExists,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, error)
    }
}

impl FileError {
    /// The [`FileError`] an `io::Error` carries (see `From<FileError>`), or the error itself.
    pub fn from_io(error: io::Error) -> Result<Self, io::Error> {
        if error.get_ref().is_some_and(|e| e.is::<Self>()) {
            let inner = error.into_inner().expect("checked above");
            Ok(*inner.downcast::<Self>().expect("checked above"))
        } else {
            Err(error)
        }
    }
}

/// `-`: stdout.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Where the bytes go until [`Output::persist`].
#[derive(Debug)]
enum Placement {
    /// Created at the path by us: removed if dropped unpersisted.
    New,
    /// Created beside the path, to be renamed over it.
    Replacing { temporary: PathBuf },
    /// Stdout, a pipe or a device: nothing to put in place or remove.
    Stream,
}

/// An opened target. Write through [`Output::file`]; call [`Output::persist`] once the
/// content is complete (or at once, for a file that must be in place while it grows).
#[derive(Debug)]
pub struct Output {
    file: Option<File>,
    path: PathBuf,
    placement: Placement,
}

impl Output {
    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("present until persisted or dropped")
    }

    /// True for stdout, pipes and devices.
    pub fn is_stream(&self) -> bool {
        matches!(self.placement, Placement::Stream)
    }

    /// Puts the file at its path (renames a replacement over the old file) and hands it over.
    pub fn persist(mut self) -> Result<File, FileError> {
        let file = self.file.take().expect("present until persisted");
        if let Placement::Replacing { temporary } = &self.placement {
            std::fs::rename(temporary, &self.path)
                .map_err(|e| FileError::io("replace", &self.path, e))?;
        }
        self.placement = Placement::Stream;
        Ok(file)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else { return };
        let created = match &self.placement {
            Placement::New => &self.path,
            Placement::Replacing { temporary } => temporary,
            Placement::Stream => return,
        };
        // Remove only what is still the file we created (same device and inode).
        if let (Ok(ours), Ok(there)) = (file.metadata(), std::fs::symlink_metadata(created))
            && (ours.dev(), ours.ino()) == (there.dev(), there.ino())
        {
            let _ = std::fs::remove_file(created);
        }
    }
}

/// Checks `path` against `rules` without creating anything: for refusing early, before a
/// long setup. [`create`] checks again (and the checks there are the ones that hold).
pub fn check(path: &Path, rules: &Rules) -> Result<(), FileError> {
    if is_stdout(path) {
        return stdout_allowed(rules);
    }
    match std::fs::symlink_metadata(path) {
        // New: its directory must be there (checked now rather than after a long setup).
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let directory = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            match std::fs::metadata(directory) {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(FileError::io(
                    "create",
                    path,
                    io::Error::from_raw_os_error(libc::ENOTDIR),
                )),
                Err(e) => Err(FileError::io("create", path, e)),
            }
        }
        Err(e) => Err(FileError::io("inspect", path, e)),
        Ok(meta) => {
            classify(path, &meta, rules)?;
            Ok(())
        }
    }
}

/// Opens `path` for writing by the rules of the module doc.
pub fn create(path: &Path, rules: &Rules) -> Result<Output, FileError> {
    if is_stdout(path) {
        stdout_allowed(rules)?;
        let fd = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| FileError::io("write to", path, e))?;
        return Ok(Output {
            file: Some(File::from(fd)),
            path: path.to_owned(),
            placement: Placement::Stream,
        });
    }
    // The path may vanish between a failed exclusive create and its inspection: try again.
    for _ in 0..3 {
        match create_private(path) {
            Ok(file) => {
                return Ok(Output {
                    file: Some(file),
                    path: path.to_owned(),
                    placement: Placement::New,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists || is_symlink_loop(&e) => {}
            Err(e) => return Err(FileError::io("create", path, e)),
        }
        let meta = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FileError::io("inspect", path, e)),
            Ok(meta) => meta,
        };
        return match classify(path, &meta, rules)? {
            Existing::Stream => open_stream(path, &meta, rules),
            Existing::Replaceable => replace(path),
        };
    }
    Err(FileError::io(
        "create",
        path,
        io::Error::other("the path keeps changing"),
    ))
}

/// What an existing path may become.
enum Existing {
    Stream,
    Replaceable,
}

fn stdout_allowed(rules: &Rules) -> Result<(), FileError> {
    if rules.streams == Streams::Refused {
        return Err(FileError::NoStdout { what: rules.what });
    }
    if io::stdout().is_terminal() {
        return Err(FileError::Terminal { what: rules.what });
    }
    Ok(())
}

/// Applies the rules to an existing path (`meta` from `lstat`).
fn classify(path: &Path, meta: &std::fs::Metadata, rules: &Rules) -> Result<Existing, FileError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(FileError::Symlink {
            path: path.to_owned(),
        });
    }
    if let Some(input) = rules.input
        && let Ok(read) = std::fs::metadata(input)
        && (read.dev(), read.ino()) == (meta.dev(), meta.ino())
    {
        return Err(FileError::IsInput {
            path: path.to_owned(),
            input: input.to_owned(),
            what: rules.what,
        });
    }
    let not_a_file = |kind| FileError::NotAFile {
        path: path.to_owned(),
        kind,
        what: rules.what,
    };
    if kind.is_file() {
        return match rules.overwrite {
            Overwrite::Replace => Ok(Existing::Replaceable),
            Overwrite::Refuse => Err(FileError::Exists {
                path: path.to_owned(),
            }),
        };
    }
    if kind.is_dir() {
        return Err(not_a_file("a directory"));
    }
    if kind.is_block_device() {
        return Err(not_a_file("a block device"));
    }
    if kind.is_socket() {
        return Err(not_a_file("a socket"));
    }
    // A FIFO or a character device.
    match rules.streams {
        Streams::Allowed => Ok(Existing::Stream),
        Streams::Refused if kind.is_fifo() => Err(not_a_file("a named pipe")),
        Streams::Refused => Err(not_a_file("a device")),
    }
}

/// `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `O_NOFOLLOW` on a symlink (the path became one after it was inspected).
fn is_symlink_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Opens an existing FIFO or character device as it is, and checks it is still what was
/// inspected (not swapped for a regular file in the meantime).
fn open_stream(
    path: &Path,
    inspected: &std::fs::Metadata,
    rules: &Rules,
) -> Result<Output, FileError> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| FileError::io("open", path, e))?;
    let opened = file
        .metadata()
        .map_err(|e| FileError::io("inspect", path, e))?;
    if (opened.dev(), opened.ino()) != (inspected.dev(), inspected.ino()) {
        // Nothing was written or truncated: inspect what is there now.
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| FileError::io("inspect", path, e))?;
        classify(path, &meta, rules)?;
        return Err(FileError::io(
            "open",
            path,
            io::Error::other("it was replaced while being opened"),
        ));
    }
    Ok(Output {
        file: Some(file),
        path: path.to_owned(),
        placement: Placement::Stream,
    })
}

/// Creates a private file beside `path`, to be renamed over it by [`Output::persist`].
fn replace(path: &Path) -> Result<Output, FileError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| FileError::io("replace", path, io::Error::other("it names no file")))?;
    for _ in 0..16 {
        let mut temporary_name = OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(
            ".tracer-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let temporary = path.with_file_name(temporary_name);
        match create_private(&temporary) {
            Ok(file) => {
                return Ok(Output {
                    file: Some(file),
                    path: path.to_owned(),
                    placement: Placement::Replacing { temporary },
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(FileError::io("create a file beside", path, e)),
        }
    }
    Err(FileError::io(
        "create a file beside",
        path,
        io::Error::other("no free temporary name"),
    ))
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, os::unix::fs::PermissionsExt as _};

    use super::*;

    /// A scratch directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("tracer-files-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .expect("read scratch dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const EXPORT: Rules<'static> = Rules {
        what: "pcapng export",
        overwrite: Overwrite::Refuse,
        streams: Streams::Allowed,
        input: None,
    };

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    /// Writes `bytes` with mode 0644 and returns them, for before/after comparisons.
    fn existing(path: &Path, bytes: &[u8]) -> Vec<u8> {
        std::fs::write(path, bytes).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        bytes.to_vec()
    }

    #[test]
    fn a_new_file_is_private_and_appears_only_when_persisted_or_kept() {
        let dir = Scratch::new("new");
        let path = dir.path("out.pcapng");
        let mut out = create(&path, &EXPORT).expect("create");
        assert!(!out.is_stream());
        out.file().write_all(b"data").expect("write");
        assert_eq!(mode(&path), 0o600);
        out.persist().expect("persist");
        assert_eq!(std::fs::read(&path).expect("read"), b"data");

        // Dropped before persist (the export failed): nothing is left.
        let path = dir.path("failed.pcapng");
        let mut out = create(&path, &EXPORT).expect("create");
        out.file().write_all(b"half").expect("write");
        drop(out);
        assert!(!path.exists());
        assert_eq!(dir.names(), ["out.pcapng"]);
    }

    #[test]
    fn an_existing_file_is_refused_without_force_and_left_alone() {
        let dir = Scratch::new("exists");
        let path = dir.path("old.trace");
        let before = existing(&path, b"precious");
        let err = create(&path, &EXPORT).expect_err("exists");
        assert!(matches!(err, FileError::Exists { .. }), "{err}");
        assert!(err.is_refusal());
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(matches!(
            check(&path, &EXPORT),
            Err(FileError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert_eq!(mode(&path), 0o644);
        assert_eq!(dir.names(), ["old.trace"]);
    }

    #[test]
    fn force_replaces_by_renaming_a_new_private_file_over_the_old() {
        let dir = Scratch::new("force");
        let path = dir.path("old.trace");
        existing(&path, b"old content");
        // A hard link to the old file keeps the old content: it is replaced, not rewritten.
        let link = dir.path("link.trace");
        std::fs::hard_link(&path, &link).expect("hard link");
        let force = Rules {
            overwrite: Overwrite::Replace,
            ..EXPORT
        };
        let mut out = create(&path, &force).expect("create with --force");
        out.file().write_all(b"new").expect("write");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"old content",
            "in place only once persisted"
        );
        out.persist().expect("persist");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&link).expect("read"), b"old content");
        assert_eq!(mode(&link), 0o644, "the old file was not chmod-ed");
        assert_eq!(
            dir.names(),
            ["link.trace", "old.trace"],
            "no temporary left"
        );

        // A replacement dropped unpersisted leaves the old file and no temporary.
        let out = create(&path, &force).expect("create with --force");
        drop(out);
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(dir.names(), ["link.trace", "old.trace"]);
    }

    #[test]
    fn a_symlink_is_refused_even_with_force_and_its_target_untouched() {
        let dir = Scratch::new("symlink");
        let target = dir.path("target");
        let before = existing(&target, b"somebody's file");
        let link = dir.path("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let dangling = dir.path("dangling");
        std::os::unix::fs::symlink(dir.path("nothing-here"), &dangling).expect("symlink");
        for overwrite in [Overwrite::Refuse, Overwrite::Replace] {
            let rules = Rules {
                overwrite,
                ..EXPORT
            };
            for path in [&link, &dangling] {
                let err = create(path, &rules).expect_err("a symlink");
                assert!(matches!(err, FileError::Symlink { .. }), "{err}");
                assert!(matches!(
                    check(path, &rules),
                    Err(FileError::Symlink { .. })
                ));
            }
        }
        assert_eq!(std::fs::read(&target).expect("read"), before);
        assert_eq!(mode(&target), 0o644);
        assert_eq!(dir.names(), ["dangling", "link", "target"]);
    }

    #[test]
    fn the_input_is_never_the_output_by_any_path() {
        let dir = Scratch::new("input");
        let input = dir.path("session.trace");
        let before = existing(&input, b"TRACEREC recording");
        let hard_link = dir.path("same.trace");
        std::fs::hard_link(&input, &hard_link).expect("hard link");
        let other_spelling = dir.0.join(".").join("session.trace");
        for overwrite in [Overwrite::Refuse, Overwrite::Replace] {
            let rules = Rules {
                overwrite,
                input: Some(&input),
                ..EXPORT
            };
            for path in [&input, &hard_link, &other_spelling] {
                let err = create(path, &rules).expect_err("the input");
                assert!(matches!(err, FileError::IsInput { .. }), "{path:?}: {err}");
                assert!(err.is_refusal());
            }
        }
        assert_eq!(std::fs::read(&input).expect("read"), before);
        assert_eq!(dir.names(), ["same.trace", "session.trace"]);
    }

    #[test]
    fn streams_are_written_as_they_are_where_allowed() {
        let dir = Scratch::new("streams");
        // A character device is opened, not replaced.
        let mut out = create(Path::new("/dev/null"), &EXPORT).expect("/dev/null");
        assert!(out.is_stream());
        out.file().write_all(b"gone").expect("write");
        out.persist().expect("nothing to put in place");

        let recording = Rules {
            what: "recording",
            streams: Streams::Refused,
            ..EXPORT
        };
        let err = create(Path::new("/dev/null"), &recording).expect_err("not a file");
        assert!(
            matches!(
                err,
                FileError::NotAFile {
                    kind: "a device",
                    ..
                }
            ),
            "{err}"
        );
        let err = create(Path::new("-"), &recording).expect_err("not stdout");
        assert!(matches!(err, FileError::NoStdout { .. }), "{err}");

        let err = create(&dir.0, &EXPORT).expect_err("a directory");
        assert!(
            matches!(
                err,
                FileError::NotAFile {
                    kind: "a directory",
                    ..
                }
            ),
            "{err}"
        );
        assert!(dir.names().is_empty());
    }

    #[test]
    fn dash_is_stdout_unless_stdout_is_a_terminal() {
        let result = create(Path::new("-"), &EXPORT);
        if io::stdout().is_terminal() {
            assert!(matches!(result, Err(FileError::Terminal { .. })));
        } else {
            let out = result.expect("stdout");
            assert!(out.is_stream());
            assert!(!Path::new("-").exists(), "no file named `-`");
        }
    }

    #[test]
    fn io_errors_name_the_path_once_and_survive_a_trip_through_io_error() {
        let path = Path::new("/nonexistent-dir-of-tracer/out.pcapng");
        let early = check(path, &EXPORT).expect_err("no such directory");
        assert!(!early.is_refusal());
        let err = create(path, &EXPORT).expect_err("no such directory");
        assert_eq!(early.to_string(), err.to_string());
        let text = err.to_string();
        assert!(
            text.starts_with("cannot create /nonexistent-dir-of-tracer/out.pcapng: "),
            "{text}"
        );
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert!(!err.is_refusal());
        let back = FileError::from_io(io::Error::from(err)).expect("a FileError inside");
        assert_eq!(back.to_string(), text);
    }
}
