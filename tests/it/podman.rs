//! A private podman for the container tests: its own containers.conf and storage in a temp dir
//! (runc, cgroupfs, file events, small ulimits) and an image imported from this machine's own
//! binaries (tmux, sh, git, orch and their libraries, a UTF-8 locale): no registry needed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{TempDir, orch_bin};

/// The tag of the test image (in the test's own storage).
pub const IMAGE: &str = "localhost/orch-test:latest";

/// Programs the image holds (found on the PATH here, with every library `ldd` names).
const PROGRAMS: &[&str] = &[
    "sh", "bash", "tmux", "git", "cat", "mkdir", "rm", "mv", "dirname", "tail", "sleep", "env",
    "head", "ls", "true", "printf", "id",
];

/// Folders copied as they are when present (git's helpers, terminfo, the UTF-8 locale).
const TREES: &[&str] = &[
    "/usr/lib/locale/C.utf8",
    "/usr/share/terminfo/s",
    "/usr/share/terminfo/t",
    "/usr/share/terminfo/x",
    "/lib/terminfo/s",
    "/lib/terminfo/t",
    "/lib/terminfo/x",
];

/// One podman, private to a test: Drop removes its containers, image and storage.
pub struct Podman {
    pub dir: TempDir,
}

/// Why the container tests cannot run here, if they cannot (printed, and the test returns).
pub fn unavailable() -> Option<String> {
    if Command::new("podman").arg("--version").output().is_err() {
        return Some("no podman (install podman and runc; .ci/run does)".into());
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("no runc (install runc; .ci/run does)".into());
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("not root (the tests run rootful podman with cgroupfs)".into());
    }
    None
}

/// A private podman for the calling test, or (with a message) a return from it when podman
/// cannot be installed or run containers here.
#[macro_export]
macro_rules! need_podman {
    () => {
        match $crate::podman::Podman::try_start() {
            Ok(podman) => podman,
            Err(why) => {
                eprintln!("SKIPPED: container tests need a podman that runs containers: {why}");
                return;
            }
        }
    };
}

impl Podman {
    /// [`Podman::start`], then one throwaway container: why not, when this machine cannot
    /// (no podman, not root, a kernel or storage that refuses containers).
    pub fn try_start() -> Result<Podman, String> {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let podman = Podman::start();
        let out = podman.run(&["run", "--rm", "--network", "none", IMAGE, "true"]);
        if !out.status.success() {
            return Err(format!(
                "podman run fails here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(podman)
    }

    /// A private configuration and storage, and the test image imported into it.
    pub fn start() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("orch-podman")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{}\"\ntmp_dir = \"{}\"\n",
                d.join("events.log").display(),
                d.join("tmp").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"{}\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                storage_driver(d),
                d.join("run").display(),
                d.join("root").display()
            ),
        )
        .unwrap();
        let podman = Podman { dir };
        podman.import_image();
        podman
    }

    /// The variables that point podman (and orch's calls to it) at this private setup.
    pub fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("CONTAINERS_CONF", self.dir.path().join("containers.conf")),
            (
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            ),
        ]
    }

    /// `podman ARGS` on this setup.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(args).envs(self.env());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `podman ARGS`, asserting success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The state of container `name` (`running`, `exited`, ...), `None` when there is none.
    pub fn state(&self, name: &str) -> Option<String> {
        let out = self.run(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            name,
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The full id of container `name`.
    pub fn id(&self, name: &str) -> Option<String> {
        let out = self.run(&["container", "inspect", "--format", "{{.Id}}", name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A root filesystem of this machine's programs, imported as [`IMAGE`].
    fn import_image(&self) {
        let root = self.dir.path().join("rootfs");
        for d in ["usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // A merged /usr, as Debian has: /bin/sh and /lib64/ld-linux resolve either way.
        for (link, to) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
            ("sbin", "usr/sbin"),
        ] {
            std::os::unix::fs::symlink(to, root.join(link)).unwrap();
        }
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        for p in PROGRAMS {
            if let Some(path) = which(p) {
                copy_with_libraries(&root, &path);
            }
        }
        // git's helpers (receive-pack and friends, for a push to a path).
        if let Some(exec_path) = Command::new("git")
            .arg("--exec-path")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty())
        {
            copy_tree(&root, Path::new(&exec_path));
        }
        for t in TREES {
            copy_tree(&root, Path::new(t));
        }
        // orch itself, stripped when strip is here (the debug binary is ~200 MB).
        let orch = root.join("usr/bin/orch");
        std::fs::copy(orch_bin(), &orch).unwrap();
        let _ = Command::new("strip")
            .arg(&orch)
            .stderr(Stdio::null())
            .status();
        copy_libraries(&root, &orch_bin());
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = self
            .cmd(&["import", "-", IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .unwrap();
        let _ = tar.wait();
        assert!(
            out.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // The storage is this test's own: every container in it is ours.
        let names = self.run(&["ps", "-a", "--format", "{{.Names}}"]);
        for name in String::from_utf8_lossy(&names.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", "-t", "0", name]);
        }
        let _ = self.run(&["rmi", "-f", IMAGE]);
        // Layers may stay mounted a moment after rmi: unmount what is left under our root.
        let root = self.dir.path().join("root");
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                if Path::new(m).starts_with(&root) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
    }
}

/// `overlay`, or `vfs` where the temp dir is itself on overlayfs (a CI container), which
/// overlay cannot stack on.
fn storage_driver(dir: &Path) -> &'static str {
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if fs == "overlayfs" { "vfs" } else { "overlay" }
}

/// The program's file on the PATH (not a shell builtin: `true` and `printf` are files too).
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Copies `file` to the same path under `root` (and what it links to, and its libraries).
fn copy_with_libraries(root: &Path, file: &Path) {
    copy_file(root, file);
    if let Ok(real) = std::fs::canonicalize(file) {
        copy_file(root, &real);
        copy_libraries(root, &real);
    }
}

fn copy_libraries(root: &Path, binary: &Path) {
    let Ok(out) = Command::new("ldd").arg(binary).output() else {
        return;
    };
    for lib in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        copy_file(root, Path::new(lib));
        if let Ok(real) = std::fs::canonicalize(lib) {
            copy_file(root, &real);
        }
    }
}

/// Copies one file (a symlink as a symlink) under `root`; the folders resolve through the
/// merged-/usr links made there.
fn copy_file(root: &Path, file: &Path) {
    let Ok(rel) = file.strip_prefix("/") else {
        return;
    };
    let dest = root.join(rel);
    if dest.symlink_metadata().is_ok() {
        return;
    }
    let Ok(meta) = file.symlink_metadata() else {
        return;
    };
    if let Some(parent) = dest.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if meta.file_type().is_symlink() {
        if let Ok(to) = std::fs::read_link(file) {
            let _ = std::os::unix::fs::symlink(to, &dest);
        }
    } else {
        let _ = std::fs::copy(file, &dest);
    }
}

fn copy_tree(root: &Path, tree: &Path) {
    let Ok(rel) = tree.strip_prefix("/") else {
        return;
    };
    if !tree.exists() {
        return;
    }
    let dest = root.join(rel);
    if let Some(parent) = dest.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = Command::new("cp").arg("-a").arg(tree).arg(&dest).status();
}
