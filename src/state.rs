//! state: the watchdog's on-disk state — atomic (temp + fsync + rename) writes, the single
//! watchdog lock (`<state_dir>/watchdog.lock`), JSON state files and the phase index file.
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The lock file's name inside the state dir.
pub const LOCK_FILE: &str = "watchdog.lock";

/// Replace `path` with `bytes` so readers see the old or the new content, never a mix: a temp
/// file in the same directory, fsynced, renamed over `path`, then the directory fsynced.
/// The parent directory must exist. An existing file keeps its permissions; a new one gets 0644.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    let perms = match fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => fs::Permissions::from_mode(0o644),
    };
    tmp.as_file().set_permissions(perms)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        // Best effort: makes the rename itself durable; some filesystems refuse dir fsync.
        let _ = d.sync_all();
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another watchdog holds {path}{}; stop it first (orch down) or wait for it to exit",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("I/O error on the watchdog lock {path} while {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
}

/// The one-watchdog-per-project lock: an OS file lock (flock on Linux) on
/// `<state_dir>/watchdog.lock` holding the holder's pid. Released when dropped or when the
/// process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub struct WatchdogLock {
    file: File,
    path: PathBuf,
}

impl WatchdogLock {
    /// Take the lock at `path` without waiting; creates the file (and its directory).
    pub fn acquire(path: &Path) -> Result<WatchdogLock, LockError> {
        let io_err = |doing| {
            let path = path.to_path_buf();
            move |source| LockError::Io {
                path,
                doing,
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err("creating its directory"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("opening it"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_err("locking it")(source)),
        }
        file.set_len(0).map_err(io_err("clearing it"))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io_err("writing the holder's pid into it"))?;
        Ok(WatchdogLock {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WatchdogLock {
    fn drop(&mut self) {
        // Still holding the lock: clear the pid so the file never names a departed holder.
        // Closing the file (right after) releases the lock.
        let _ = self.file.set_len(0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("could not read state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("state file {path} is corrupt ({source}); fix or delete it")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("could not encode state for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("could not write state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// A JSON state file: Ok(None) if it does not exist, an error naming it if it is unreadable or
/// does not parse as `T`.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Write `value` as pretty JSON to `path` atomically (see [`write_atomic`]).
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The phase index in `path`: a missing, unreadable or garbage file (or a negative number,
/// which the reference would index from the end) reads as 0, like the reference.
pub fn read_index(path: &Path) -> usize {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Write the phase index the way the reference does (the bare number, no newline), atomically.
pub fn write_index(path: &Path, index: usize) -> io::Result<()> {
    write_atomic(path, index.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const CHILD_ENV: &str = "ORCH_TEST_LOCK_CHILD";

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn write_atomic_into_a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("nope/f"), b"x").is_err());
    }

    #[test]
    fn second_lock_handle_in_the_same_process_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(LOCK_FILE);
        let first = WatchdogLock::acquire(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        let err = WatchdogLock::acquire(&path).unwrap_err();
        assert!(matches!(err, LockError::Held { holder: Some(p), .. } if p == std::process::id()));
        let msg = err.to_string();
        assert!(
            msg.contains("another watchdog holds") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
        drop(first);
        WatchdogLock::acquire(&path).unwrap();
    }

    /// Run by `lock_is_refused_to_another_process` in a child copy of this test binary.
    #[test]
    fn lock_child_helper() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let code = match WatchdogLock::acquire(Path::new(&path)) {
            Err(LockError::Held { .. }) => 42,
            Ok(_) => 43,
            Err(_) => 44,
        };
        std::process::exit(code);
    }

    fn child_acquire(path: &Path) -> Option<i32> {
        let exe = std::env::current_exe().unwrap();
        Command::new(exe)
            .args([
                "--exact",
                "state::tests::lock_child_helper",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, path)
            .output()
            .unwrap()
            .status
            .code()
    }

    #[test]
    fn lock_is_refused_to_another_process_and_freed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let lock = WatchdogLock::acquire(&path).unwrap();
        assert_eq!(
            child_acquire(&path),
            Some(42),
            "child should see the lock held"
        );
        drop(lock);
        assert_eq!(
            child_acquire(&path),
            Some(43),
            "child should get the freed lock"
        );
    }

    #[test]
    fn lock_conflicts_with_flock_of_other_programs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let _lock = WatchdogLock::acquire(&path).unwrap();
        let Ok(out) = Command::new("flock")
            .arg("-n")
            .arg(&path)
            .arg("true")
            .output()
        else {
            return; // util-linux flock not installed: the in-binary child test covers this
        };
        assert!(
            !out.status.success(),
            "flock -n should fail while we hold the lock"
        );
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        n: u32,
    }

    #[test]
    fn json_state_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        assert_eq!(load_json::<Sample>(&path).unwrap(), None);
        save_json(&path, &Sample { n: 7 }).unwrap();
        assert_eq!(load_json::<Sample>(&path).unwrap(), Some(Sample { n: 7 }));
    }

    #[test]
    fn corrupt_json_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "{not json").unwrap();
        let err = load_json::<Sample>(&path).unwrap_err().to_string();
        assert!(
            err.contains("corrupt") && err.contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn phase_index_reads_like_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phase-idx");
        assert_eq!(read_index(&path), 0);
        write_index(&path, 3).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "3");
        assert_eq!(read_index(&path), 3);
        for (text, want) in [(" 2\n", 2), ("garbage", 0), ("-1", 0), ("", 0)] {
            fs::write(&path, text).unwrap();
            assert_eq!(read_index(&path), want, "{text:?}");
        }
    }
}
