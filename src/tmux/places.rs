//! Sessions on other hosts: which host's server each routed session lives on, the fleet
//! snapshot across places (hosts asked in parallel, one call each), and starting a session on
//! a host with its env sent over the ssh channel's stdin (never on a command line).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exec::Cmdline;
use super::fleet::{self, Fleet, HostReport};
use super::session::{self, NewSession};
use super::{DEFAULT_HEIGHT, DEFAULT_WIDTH, Tmux, TmuxError, pane_target, session_target};
use crate::transport::{Output, Place, PlaceError};

/// Overrides how long one call to a host may take (seconds; default 10).
pub const REMOTE_TIMEOUT_ENV: &str = "ORCH_SSH_TIMEOUT";
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// A host as the tmux layer sees it: how to reach it, its tmux server, the sessions on it.
#[derive(Debug, Clone)]
pub struct HostPlace {
    /// Where its commands run (ssh, or a wrapper such as `srun`).
    pub place: Arc<dyn Place>,
    /// The host's tmux server (`-L`), `None` for its default server.
    pub socket: Option<String>,
    pub sessions: Vec<String>,
}

/// The handles of the hosts, and which of them each routed session lives on.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    hosts: Vec<Tmux>,
    by_session: HashMap<String, usize>,
}

impl Routes {
    pub(crate) fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Prints the host's tmux version on stderr, then lists its panes (exit status = list-panes').
const PROBE_SCRIPT: &str =
    r#"v=$("$1" -V 2>/dev/null) || v=; printf 'orch-tmux-version:%s\n' "$v" >&2; exec "$@""#;

/// Makes the working and log folders, writes the env file from stdin (private), then runs
/// tmux.
const START_SCRIPT: &str =
    r#"mkdir -p -- "$1" "$2" || exit 1; (umask 077 && cat > "$3") || exit 1; shift 3; exec "$@""#;

/// Captures the pane of every session named after the tmux binary and socket, each after a
/// marker line (a failed capture adds a failure line).
const CAPTURE_SCRIPT: &str = r#"t=$1; k=$2; shift 2; for s do printf '\036orch-capture %s\n' "$s"; "$t" -u -L "$k" capture-pane -p -t "=$s:" 2>/dev/null || printf '\036orch-failed\n'; done"#;

/// Writes stdin to `$1` through a temp file and a rename, creating its folder.
const PUT_SCRIPT: &str = r#"d=$(dirname -- "$1") && mkdir -p -- "$d" && (umask 077 && cat > "$1.orch-tmp") && mv -f -- "$1.orch-tmp" "$1""#;

impl Tmux {
    /// This handle with `hosts`: their sessions are run on the host's server over ssh.
    pub fn with_hosts(mut self, hosts: Vec<HostPlace>) -> Self {
        let timeout = std::env::var(REMOTE_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(REMOTE_TIMEOUT, Duration::from_secs_f64);
        let mut routes = Routes::default();
        for host in hosts {
            let index = routes.hosts.len();
            for s in &host.sessions {
                routes.by_session.insert(s.clone(), index);
            }
            routes.hosts.push(Tmux {
                socket: host.socket.filter(|s| !s.is_empty()),
                binary: PathBuf::from("tmux"),
                timeout,
                place: Some(host.place),
                routes: Arc::default(),
            });
        }
        self.routes = Arc::new(routes);
        self
    }

    /// The handle whose server holds `session`: its host's, or this one.
    pub(crate) fn at(&self, session: &str) -> &Tmux {
        self.remote(session).unwrap_or(self)
    }

    /// The host handle of a session routed to a host.
    pub(crate) fn remote(&self, session: &str) -> Option<&Tmux> {
        let i = self.routes.by_session.get(session)?;
        self.routes.hosts.get(*i)
    }

    /// The name of the host `session` lives on (`None`: this machine).
    pub fn host_of(&self, session: &str) -> Option<&str> {
        self.remote(session)?.place.as_deref().map(|p| p.name())
    }

    /// The transport of each host, in config order.
    pub fn places(&self) -> impl Iterator<Item = &dyn Place> {
        self.routes.hosts.iter().filter_map(|h| h.place.as_deref())
    }

    /// Sessions routed to a host whose last call failed (marked down until it answers).
    pub fn host_down(&self, session: &str) -> Option<PlaceError> {
        self.remote(session)?.place.as_ref()?.down()
    }

    /// Kills every host's master connection (for `down`): nothing of orch's stays running.
    pub fn close_hosts(&self) {
        for place in self.places() {
            place.close();
        }
    }

    pub(super) fn fleet_everywhere(&self) -> Result<Fleet, TmuxError> {
        let (local, remote) = std::thread::scope(|scope| {
            let remote: Vec<_> = self
                .routes
                .hosts
                .iter()
                .map(|h| scope.spawn(|| h.probe_host()))
                .collect();
            let local = self.fleet_here();
            let remote: Vec<(HostReport, Option<Fleet>)> = remote
                .into_iter()
                .zip(&self.routes.hosts)
                .map(|(j, h)| {
                    j.join().unwrap_or_else(|_| {
                        (
                            HostReport::down(h.host_name(), "the host query panicked"),
                            None,
                        )
                    })
                })
                .collect();
            (local, remote)
        });
        let mut fleet = local?;
        for (session, i) in &self.routes.by_session {
            fleet.remove(session);
            let Some((_, answer)) = remote.get(*i) else {
                continue;
            };
            match answer.as_ref() {
                Some(host_fleet) => {
                    if let Some(pane) = host_fleet.get(session) {
                        fleet.insert(pane.clone());
                    }
                }
                None => fleet.mark_unreachable(session),
            }
        }
        for (report, _) in remote {
            fleet.push_host(report);
        }
        Ok(fleet)
    }

    fn host_name(&self) -> String {
        self.place
            .as_deref()
            .map_or("local", |p| p.name())
            .to_string()
    }

    /// One call to this host: its tmux version and its panes. The fleet is `None` when the
    /// host did not answer (or has no usable tmux).
    pub fn probe_host(&self) -> (HostReport, Option<Fleet>) {
        let (report, fleet) = self.probe_place();
        let holder = self.place.as_deref().and_then(|p| p.holder());
        (report.held_by(holder), fleet)
    }

    fn probe_place(&self) -> (HostReport, Option<Fleet>) {
        let name = self.host_name();
        let Some(place) = self.place.as_deref() else {
            let fleet = self.fleet_here();
            let report = HostReport {
                name,
                reachable: true,
                latency_ms: Some(0),
                tmux_version: None,
                error: fleet.as_ref().err().map(ToString::to_string),
                job_id: None,
                job_state: None,
                place: None,
            };
            return (report, fleet.ok());
        };
        let list =
            Cmdline::new("list-panes", "all sessions").args(["-a", "-F", fleet::FLEET_FORMAT]);
        let mut argv: Vec<String> = ["sh", "-c", PROBE_SCRIPT, "orch-probe"]
            .map(String::from)
            .into();
        argv.extend(self.runner().remote_argv(&list));
        let start = Instant::now();
        let out = match place.probe(&argv, None, self.timeout) {
            Ok(out) => out,
            // A stopped container: the host answered, its sessions are gone (to be healed).
            Err(PlaceError::Gone { detail, .. }) => {
                let mut report = HostReport::down(name, &detail);
                report.reachable = true;
                report.place = place.details();
                return (report, Some(Fleet::default()));
            }
            Err(e) => {
                let mut report = HostReport::down(name, &e.to_string());
                report.place = place.details();
                return (report, None);
            }
        };
        let latency = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let version = out
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("orch-tmux-version:"))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from);
        let mut report = HostReport {
            name: name.clone(),
            reachable: true,
            latency_ms: Some(latency),
            tmux_version: version,
            error: None,
            job_id: None,
            job_state: None,
            place: place.details(),
        };
        if report.tmux_version.is_none() {
            report.error = Some(format!(
                "tmux is not installed on host {name} (install tmux 3.2 or newer there)"
            ));
            return (report, None);
        }
        let fleet = if out.success() {
            fleet::parse_fleet(&out.stdout)
        } else if super::server_absent(&out.stderr) || out.stderr.contains("no current target") {
            Ok(Fleet::default())
        } else {
            Err(TmuxError::Failed {
                verb: "list-panes",
                target: format!("host {name}"),
                stderr: out
                    .stderr
                    .lines()
                    .filter(|l| !l.starts_with("orch-tmux-version:"))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        };
        match fleet {
            Ok(f) => (report, Some(f)),
            Err(e) => {
                report.error = Some(e.to_string());
                (report, None)
            }
        }
    }

    /// Runs `argv` on this handle's host (`stdin` fed through the ssh channel).
    fn run_remote(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        what: &'static str,
        target: &str,
    ) -> Result<Output, TmuxError> {
        let Some(place) = self.place.as_deref() else {
            return Err(TmuxError::Parse {
                verb: what,
                detail: "not a host".into(),
            });
        };
        let out = place.run(argv, stdin, self.timeout)?;
        if out.success() {
            return Ok(out);
        }
        Err(TmuxError::Failed {
            verb: what,
            target: target.to_string(),
            stderr: match out.stderr.trim() {
                "" => format!("exit {:?}", out.code),
                e => e.to_string(),
            },
        })
    }

    /// `new_session` on a host, in one ssh call: folders made, the env written to a private
    /// file from stdin (read and removed by the pane), the session, its options and log pipe.
    pub(super) fn new_remote_session(&self, spec: &NewSession) -> Result<(), TmuxError> {
        let base = spec
            .log
            .as_ref()
            .and_then(|l| l.parent())
            .map_or_else(|| spec.cwd.join(".orch"), Path::to_path_buf);
        let env_file = base.join(format!(".env-{}", spec.name));
        let env_text = session::env_text(spec)?;
        let wrapped = session::env_wrapped(spec, &env_file)?;
        let pane = pane_target(&spec.name);
        let mut cmd = Cmdline::new("new-session", session_target(&spec.name))
            .args(["-d", "-s", &spec.name])
            .arg("-c")
            .arg(spec.cwd.to_string_lossy())
            .arg("-x")
            .arg(spec.width.unwrap_or(DEFAULT_WIDTH).to_string())
            .arg("-y")
            .arg(spec.height.unwrap_or(DEFAULT_HEIGHT).to_string())
            .arg("--")
            .args(&wrapped);
        if spec.remain_on_exit {
            cmd = cmd
                .then("set-option")
                .args(["-t", &pane, "remain-on-exit", "on"]);
        }
        if let Some(log) = &spec.log {
            let sink = format!("cat >> {}", shell_words::quote(&log.to_string_lossy()));
            cmd = cmd.then("pipe-pane").args(["-o", "-t", &pane, &sink]);
        }
        let mut argv: Vec<String> = ["sh", "-c", START_SCRIPT, "orch-start"]
            .map(String::from)
            .into();
        argv.extend([
            spec.cwd.display().to_string(),
            base.display().to_string(),
            env_file.display().to_string(),
        ]);
        argv.extend(self.runner().remote_argv(&cmd));
        self.run_remote(
            &argv,
            Some(env_text.as_bytes()),
            "new-session",
            &session_target(&spec.name),
        )
        .map(drop)
    }

    /// The visible screens (last `last_lines` lines) of `sessions` that live on hosts, in one
    /// call per host, hosts in parallel. Sessions on this machine, on a host marked down, or
    /// whose capture failed are left out: capture those one by one.
    pub fn capture_many(&self, sessions: &[&str], last_lines: usize) -> HashMap<String, String> {
        let mut by_host: HashMap<usize, Vec<&str>> = HashMap::new();
        for s in sessions {
            if let Some(i) = self.routes.by_session.get(*s) {
                by_host.entry(*i).or_default().push(s);
            }
        }
        std::thread::scope(|scope| {
            let jobs: Vec<_> = by_host
                .into_iter()
                .filter_map(|(i, names)| Some((self.routes.hosts.get(i)?, names)))
                .filter(|(h, _)| h.socket.is_some())
                .map(|(h, names)| scope.spawn(move || h.capture_here(&names, last_lines)))
                .collect();
            jobs.into_iter()
                .filter_map(|j| j.join().ok())
                .flatten()
                .collect()
        })
    }

    fn capture_here(&self, sessions: &[&str], last_lines: usize) -> HashMap<String, String> {
        let mut argv: Vec<String> = ["sh", "-c", CAPTURE_SCRIPT, "orch-capture"]
            .map(String::from)
            .into();
        argv.push(self.binary.display().to_string());
        argv.push(self.socket.clone().unwrap_or_default());
        argv.extend(sessions.iter().map(|s| s.to_string()));
        let target = format!("{} sessions", sessions.len());
        match self.run_remote(&argv, None, "capture-pane", &target) {
            Ok(out) => parse_captures(&out.stdout, last_lines),
            Err(e) => {
                tracing::debug!("batched capture failed: {e}");
                HashMap::new()
            }
        }
    }

    /// Writes `data` to `path` where `session` runs (this machine or its host), through a temp
    /// file and a rename; on a host the bytes travel over the ssh channel's stdin.
    pub fn put_file(&self, session: &str, path: &Path, data: &[u8]) -> Result<(), TmuxError> {
        let Some(host) = self.remote(session) else {
            let io = |doing, source| TmuxError::Io {
                session: session.to_string(),
                path: path.to_path_buf(),
                doing,
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io("creating its folder", e))?;
            }
            return crate::state::write_atomic(path, data).map_err(|e| io("writing it", e));
        };
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            PUT_SCRIPT.into(),
            "orch-put".into(),
            path.display().to_string(),
        ];
        host.run_remote(&argv, Some(data), "write", &path.display().to_string())
            .map(drop)
    }

    /// Runs `argv` where `session` runs and returns its stdout (`None` for a local session:
    /// the caller reads the file itself). For `logs` on a host.
    pub fn run_for(&self, session: &str, argv: &[String]) -> Option<Result<String, TmuxError>> {
        let host = self.remote(session)?;
        Some(
            host.run_remote(argv, None, "read", session)
                .map(|o| o.stdout),
        )
    }

    /// An ssh command (no timeout: the caller streams it) running `argv` on `session`'s
    /// host; `None` for a local session. For `logs -f` on a host.
    pub fn streaming_command(
        &self,
        session: &str,
        argv: &[String],
    ) -> Option<std::process::Command> {
        let place = self.remote(session)?.place.as_deref()?;
        Some(place.command(argv))
    }
}

/// Splits the output of [`CAPTURE_SCRIPT`] into screens by session (failed ones left out).
fn parse_captures(output: &str, last_lines: usize) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for block in output.split("\u{1e}orch-capture ").skip(1) {
        let (session, screen) = block.split_once('\n').unwrap_or((block, ""));
        if screen.contains("\u{1e}orch-failed") {
            continue;
        }
        out.insert(
            session.to_string(),
            super::last_lines_of(screen, last_lines),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_captures_split_by_session_and_drop_failures() {
        let out = "\u{1e}orch-capture a\nline 1\nline 2\n\n\u{1e}orch-capture b c\n\u{1e}orch-failed\n\u{1e}orch-capture d\n";
        let got = parse_captures(out, 40);
        assert_eq!(got["a"], "line 1\nline 2");
        assert!(!got.contains_key("b c"));
        assert_eq!(got["d"], "");
        assert_eq!(got.len(), 2);
    }
}
