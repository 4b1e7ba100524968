//! `orch service install|uninstall [--user]`: a systemd user unit that runs `orch up` and keeps
//! the watchdog alive across logins and reboots (printed, with where to put it, without systemd).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::{Error, Result, fleet};

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write the unit (~/.config/systemd/user/orch-<project>.service) and enable it.
    ///
    /// Example: orch service install --user
    Install {
        /// A user unit (the only kind orch writes; accepted for clarity).
        #[arg(long)]
        user: bool,
        /// Only print the unit, write nothing.
        #[arg(long)]
        print: bool,
    },
    /// Disable and remove the unit (the fleet itself keeps running; `orch down` stops it).
    ///
    /// Example: orch service uninstall --user
    Uninstall {
        #[arg(long)]
        user: bool,
    },
    /// What the unit runs: `orch up`, then restart the watchdog session whenever it died
    /// without being stopped on purpose.
    #[command(hide = true)]
    Run,
}

pub fn run(config: &Path, action: Action) -> Result<ExitCode> {
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let cfg = super::load(&config)?;
    match action {
        Action::Install { print, .. } => install(&cfg, &config, print),
        Action::Uninstall { .. } => uninstall(&cfg),
        Action::Run => keep_alive(&config),
    }
}

/// `orch-<prefix>.service`, the prefix's trailing `-`/`_` dropped, other odd characters `_`.
pub fn unit_name(session_prefix: &str) -> String {
    let core: String = session_prefix
        .trim_end_matches(['-', '_'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let core = if core.is_empty() {
        "fleet".into()
    } else {
        core
    };
    format!("orch-{core}.service")
}

/// One word of an Exec line or an Environment assignment, quoted the way systemd reads it.
pub fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// Pure: the unit text. `env` is written as Environment= lines (PATH, the tmux socket).
pub fn render_unit(
    orch: &Path,
    config: &Path,
    project_dir: &Path,
    env: &[(String, String)],
) -> String {
    let exe = systemd_quote(&orch.display().to_string());
    let cfg = systemd_quote(&config.display().to_string());
    let mut env_lines = String::new();
    for (k, v) in env {
        env_lines.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{k}={v}"))
        ));
    }
    format!(
        "# Written by `orch service install`; remove with `orch service uninstall`.\n\
         [Unit]\n\
         Description=orch fleet of {config}\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         WorkingDirectory={dir}\n\
         {env_lines}\
         ExecStart={exe} --config {cfg} service run\n\
         Restart=always\n\
         RestartSec=5\n\
         # The agents and the watchdog live in tmux servers: a restart of this unit must not\n\
         # kill them, only its own keep-alive process.\n\
         KillMode=process\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        config = config.display(),
        dir = systemd_quote(&project_dir.display().to_string()),
    )
}

fn unit_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("systemd").join("user"))
}

/// systemd runs this machine (it is PID 1's init) and systemctl is there.
fn has_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::process::Command::new("systemctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn systemctl(args: &[&str]) -> std::result::Result<(), String> {
    let out = std::process::Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn install(cfg: &Config, config: &Path, print: bool) -> Result<ExitCode> {
    let orch = fleet::redaction::orch_binary()
        .ok_or_else(|| Error::Runtime("cannot find the orch binary for the unit".into()))?;
    let mut env = Vec::new();
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".to_string(), path));
    }
    if let Ok(socket) = std::env::var(crate::tmux::SOCKET_ENV).map(|s| s.trim().to_string())
        && !socket.is_empty()
    {
        env.push((crate::tmux::SOCKET_ENV.to_string(), socket));
    }
    let unit = render_unit(&orch, config, &cfg.project_dir, &env);
    let name = unit_name(&cfg.session_prefix);
    let dir = unit_dir();
    if print || !has_systemd() || dir.is_none() {
        if !print {
            println!("# systemd is not running here: nothing was installed.");
        }
        let place = dir.map_or_else(
            || "~/.config/systemd/user".to_string(),
            |d| d.display().to_string(),
        );
        println!("# Save this as {place}/{name}, then:");
        println!("#   systemctl --user daemon-reload && systemctl --user enable --now {name}");
        println!("#   loginctl enable-linger $USER   # to start it at boot, before any login");
        print!("{unit}");
        return Ok(ExitCode::SUCCESS);
    }
    let dir = dir.unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating the unit folder", e))?;
    let path = dir.join(&name);
    crate::state::write_atomic(&path, unit.as_bytes())
        .map_err(|e| Error::io(&path, "writing the unit", e))?;
    println!("wrote {}", path.display());
    match systemctl(&["daemon-reload"]).and_then(|_| systemctl(&["enable", &name])) {
        Ok(()) => {
            println!("enabled {name}: start it now with `systemctl --user start {name}`");
            println!("to start it at boot before any login: `loginctl enable-linger $USER`");
        }
        Err(e) => println!(
            "could not enable {name} ({e}); run `systemctl --user daemon-reload && systemctl --user enable --now {name}`"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn uninstall(cfg: &Config) -> Result<ExitCode> {
    let name = unit_name(&cfg.session_prefix);
    let Some(path) = unit_dir().map(|d| d.join(&name)) else {
        return Err(Error::Runtime(
            "no HOME: cannot find the systemd user units".into(),
        ));
    };
    if !path.exists() {
        println!(
            "{name} is not installed ({} does not exist)",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if has_systemd()
        && let Err(e) = systemctl(&["disable", "--now", &name])
    {
        println!("could not disable {name}: {e}");
    }
    std::fs::remove_file(&path).map_err(|e| Error::io(&path, "removing the unit", e))?;
    if has_systemd() {
        let _ = systemctl(&["daemon-reload"]);
    }
    println!("removed {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// How often the keep-alive looks at the watchdog.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Pure: restart the watchdog when its session is gone and it did not stop on purpose: its
/// last word is not a `watchdog_stopped` for SIGINT/SIGTERM (`orch down` sends C-c). A
/// SIGKILL leaves no word, a crash of its tmux server a SIGHUP.
pub fn watchdog_needs_restart(session_running: bool, last_stop_reason: Option<&str>) -> bool {
    !session_running && !matches!(last_stop_reason, Some("SIGINT" | "SIGTERM"))
}

/// The `reason` of the last watchdog_stopped event, if it comes after the last start.
fn last_stop_reason(cfg: &Config) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let path = cfg.events_file();
    let mut f = std::fs::File::open(&path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)))
        .ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        match v["event"].as_str()? {
            crate::events::WATCHDOG_STOPPED => Some(Some(v["reason"].as_str()?.to_string())),
            crate::events::WATCHDOG_STARTED => Some(None),
            _ => None,
        }
    })?
}

fn keep_alive(config: &Path) -> Result<ExitCode> {
    let cfg = super::load(config)?;
    if let Err(e) = super::up::run(&cfg, &[]) {
        eprintln!("orch: {e}");
    }
    loop {
        std::thread::sleep(KEEP_ALIVE_EVERY);
        let Ok(cfg) = super::load(config) else {
            continue;
        };
        let session = cfg.watchdog_session();
        let running = fleet::snapshot(&cfg).is_ok_and(|f| f.contains(&session));
        if watchdog_needs_restart(running, last_stop_reason(&cfg).as_deref()) {
            match fleet::start_watchdog(&cfg, &fleet::tmux_for(&cfg)) {
                Ok(()) => println!("restarted the watchdog ({session})"),
                Err(e) => eprintln!("orch: cannot restart the watchdog: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_keep_alive_and_spares_the_tmux_servers() {
        let unit = render_unit(
            Path::new("/opt/orch bin/orch"),
            Path::new("/p/agents.toml"),
            Path::new("/p"),
            &[("PATH".into(), "/usr/bin:/bin".into())],
        );
        assert!(
            unit.contains(
                "ExecStart=\"/opt/orch bin/orch\" --config \"/p/agents.toml\" service run\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("Restart=always\n"));
        assert!(unit.contains("KillMode=process\n"));
        assert!(unit.contains("Environment=\"PATH=/usr/bin:/bin\"\n"));
        assert!(unit.contains("WantedBy=default.target"));
    }

    #[test]
    fn systemd_specials_are_escaped() {
        assert_eq!(
            systemd_quote(r#"a "b" 100% $x \"#),
            r#""a \"b\" 100%% $$x \\""#
        );
        assert_eq!(unit_name("myproj-"), "orch-myproj.service");
        assert_eq!(unit_name("a b/"), "orch-a_b_.service");
        assert_eq!(unit_name("-"), "orch-fleet.service");
    }

    #[test]
    fn only_a_watchdog_that_died_unasked_is_restarted() {
        assert!(
            watchdog_needs_restart(false, None),
            "SIGKILLed or never stopped"
        );
        assert!(
            watchdog_needs_restart(false, Some("SIGHUP")),
            "its server died"
        );
        assert!(!watchdog_needs_restart(false, Some("SIGINT")), "orch down");
        assert!(!watchdog_needs_restart(false, Some("SIGTERM")));
        assert!(!watchdog_needs_restart(true, None), "it runs");
    }
}
