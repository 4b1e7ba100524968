//! Turning the raw TOML into a typed `Config`: defaults merged, paths resolved, and every
//! problem found at once, each pointing at file:line:col where the TOML gives it.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::hosts::{self, Host};
use super::model::*;
use super::problem::{Checker, Problem};
use super::raw::*;
use super::schema::Seg;

mod looping;
mod notify;
pub use notify::{
    DEFAULT_EVENTS as DEFAULT_NOTIFY_EVENTS, DEFAULT_TIMEOUT as DEFAULT_NOTIFY_TIMEOUT,
};
mod policy;
use policy::build_policy;
mod rotation;

/// The outcome of building: a config if there were no errors, and everything found.
pub struct Built {
    pub config: Option<Config>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// The most `[watchdog].max_resends` allows.
const MAX_RESENDS: i64 = 20;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn dur(v: &Option<Seconds>, default: Duration) -> Duration {
    v.map_or(default, |s| s.0)
}

/// Looks up an environment variable (injected so tests need not touch the process env).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Build the typed config from the raw one. `path` is the absolute config file.
pub fn build(raw: RawConfig, doc: &DeTable<'_>, path: &Path, env: Option<EnvLookup<'_>>) -> Built {
    let mut c = Checker {
        doc,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let d = &raw.defaults;
    let config_dir = path.parent().unwrap_or(Path::new("/"));
    let project_dir = canonical(resolve(config_dir, d.project_dir.as_deref().unwrap_or(".")));
    let session_prefix = d.session_prefix.clone().unwrap_or_default();
    if session_prefix.is_empty() {
        c.error(
            &[Seg::Key("defaults")],
            "[defaults].session_prefix is required (e.g. session_prefix = \"myproj-\")".into(),
        );
    }
    let log_dir = match d.log_dir.as_deref() {
        Some(l) if !l.is_empty() => resolve(&project_dir, l),
        _ => {
            c.error(
                &[Seg::Key("defaults")],
                "[defaults].log_dir is required (e.g. log_dir = \".orch\")".into(),
            );
            project_dir.join(".orch")
        }
    };
    let state_dir = log_dir.join("state");

    let w = &raw.watchdog;
    let watchdog = WatchdogCfg {
        signal_interval: dur(&w.signal_interval, secs(30)),
        heavy_interval: dur(&w.heavy_interval, secs(300)),
        stall_grace: dur(&w.stall_grace, secs(180)),
        limit_probe_fallback: dur(&w.limit_probe_fallback, secs(300)),
        limit_reset_slack: dur(&w.limit_reset_slack, secs(45)),
        attention_after: dur(&w.attention_after, secs(300)),
        phase_quiet_after: dur(&w.phase_quiet_after, secs(6 * 3600)),
        repeat_after: dur(&w.repeat_after, secs(3600)),
        batch_window: dur(&w.batch_window, secs(30)),
        max_resends: match w.max_resends {
            None => 2,
            Some(n) if (0..=MAX_RESENDS).contains(&n) => n as u32,
            Some(n) => {
                c.error(
                    &[Seg::Key("watchdog"), Seg::Key("max_resends")],
                    format!("[watchdog].max_resends is {n}; it must be 0 to {MAX_RESENDS}"),
                );
                2
            }
        },
    };
    for (key, value) in [
        ("signal_interval", watchdog.signal_interval),
        ("heavy_interval", watchdog.heavy_interval),
    ] {
        if value.is_zero() {
            c.error(
                &[Seg::Key("watchdog"), Seg::Key(key)],
                format!("[watchdog].{key} must be more than 0 seconds"),
            );
        }
    }

    let metrics_listen = raw.api.metrics_listen.as_deref().and_then(|text| {
        let parsed = text.parse::<std::net::SocketAddr>().ok();
        if parsed.is_none() {
            c.error(
                &[Seg::Key("api"), Seg::Key("metrics_listen")],
                format!(
                    "[api].metrics_listen {text:?} is not an address and port (e.g. \"127.0.0.1:9464\")"
                ),
            );
        }
        parsed
    });

    // Built-in presets nobody names are not built: compiling their rules is most of a load.
    let mut referenced: BTreeSet<String> = raw.defaults.agent.backend.iter().cloned().collect();
    for a in &raw.agent {
        referenced.extend(a.keys.backend.clone());
        if let (Some(env), Some(name)) = (env, &a.name) {
            referenced.extend(env(&format!("AGENT_BACKEND_{name}")));
        }
    }
    referenced.extend(super::jobs::referenced_backends(
        &raw.profile,
        raw.defaults.agent.backend.as_deref(),
        raw.jobs.is_some(),
    ));
    let mut backends = BTreeMap::new();
    for (name, b) in &raw.backend {
        if raw.preset_only.contains(name) && !referenced.contains(name) {
            continue;
        }
        if let Some(backend) = build_backend(&mut c, name, b) {
            backends.insert(name.clone(), backend);
        }
    }

    let mut hosts = hosts::build_hosts(&mut c, &raw.host);
    let mut agents = build_agents(&mut c, &raw, &project_dir, &session_prefix, &backends, env);
    place_agents(&mut c, &raw, &mut hosts, &mut agents);
    super::presets::check_auto_accept(&mut c, &agents, &backends);
    let profiles = super::jobs::build_profiles(
        &mut c,
        &raw.profile,
        raw.defaults.agent.backend.as_deref(),
        &backends,
    );
    let jobs =
        super::jobs::build_jobs(&mut c, raw.jobs.as_ref(), &profiles, &project_dir, &log_dir);
    backends.retain(|n, _| {
        !raw.preset_only.contains(n)
            || agents.iter().any(|a| &a.backend == n)
            || profiles.values().any(|p| &p.backend == n)
    });
    let mut services = build_services(&mut c, &raw, &project_dir, &session_prefix, &agents);
    place_services(&mut c, &raw, &mut hosts, &mut services);
    let loop_ = raw
        .loop_
        .as_ref()
        .map(|l| looping::build_loop(&mut c, l, &project_dir, &agents));
    let notify = notify::build_notify(&mut c, &raw.notify, &agents);
    let pools = super::pools::build_pools(&mut c, &raw, &agents);

    let config = c.errors.is_empty().then(|| Config {
        path: path.to_path_buf(),
        project_dir,
        log_dir,
        state_dir,
        session_prefix,
        tmux_socket: d.tmux_socket.clone().filter(|s| !s.is_empty()),
        watchdog,
        api: ApiCfg { metrics_listen },
        backends,
        agents,
        services,
        loop_,
        notify,
        hosts,
        grace_period: dur(&d.agent.grace_period, secs(30)),
        jobs,
        profiles,
        pools,
    });
    Built {
        config,
        errors: c.errors,
        warnings: c.warnings,
    }
}

fn canonical(p: PathBuf) -> PathBuf {
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn build_backend(c: &mut Checker<'_>, name: &str, b: &RawBackend) -> Option<Backend> {
    let at = |key| [Seg::Key("backend"), Seg::Key(name), Seg::Key(key)];
    let prompt_delivery = match b.prompt_delivery.as_deref().unwrap_or("arg") {
        "arg" => Delivery::Arg,
        "ping" => Delivery::Ping,
        "exec" => Delivery::Exec,
        other => {
            c.error(
                &at("prompt_delivery"),
                format!("backend {name}: prompt_delivery {other:?} is not one of arg, ping, exec"),
            );
            Delivery::Arg
        }
    };
    let bin = b.bin.clone().unwrap_or_default();
    if bin.trim().is_empty() {
        c.error(
            &[Seg::Key("backend"), Seg::Key(name)],
            format!("backend {name}: bin is required (the command that starts the agent)"),
        );
    }
    let what = |key: &str| format!("backend {name}: {key}");
    let process_names: Vec<String> = b
        .process_name
        .as_ref()
        .map(|p| p.to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let preset = b
        .preset
        .clone()
        .or_else(|| crate::presets::is_preset(name).then(|| name.to_string()));
    Some(Backend {
        name: name.to_string(),
        bin,
        flags: b.flags.clone().unwrap_or_default(),
        prompt_delivery,
        process_name: process_names.first().cloned(),
        screen_rules: super::presets::screen_rules(c, name, b, preset.as_deref()),
        dialogs: super::presets::dialogs(c, name, b),
        process_names,
        preset,
        submit_key: b.submit_key.clone().unwrap_or_else(|| "Enter".into()),
        model_flag: b
            .model_flag
            .clone()
            .unwrap_or_else(|| "--model '{model}'".into()),
        supports_resume: b.supports_resume.unwrap_or(false),
        resume_flag: b
            .resume_flag
            .clone()
            .unwrap_or_else(|| "--resume '{id}'".into()),
        remote_control: b.remote_control.unwrap_or(false),
        remote_control_flag: b
            .remote_control_flag
            .clone()
            .unwrap_or_else(|| "--remote-control '{session}'".into()),
        active_re: c.regex(&at("active_re"), &what("active_re"), b.active_re.as_deref()),
        limit_re: c.regex(&at("limit_re"), &what("limit_re"), b.limit_re.as_deref()),
        fatal_re: c.regex(&at("fatal_re"), &what("fatal_re"), b.fatal_re.as_deref()),
        footer_ui: b.footer_ui.unwrap_or(false),
        log_grace: dur(&b.log_grace, secs(180)),
        stall_idle: dur(&b.stall_idle, secs(300)),
        preamble: b.preamble.clone().unwrap_or_default(),
        attach: b.attach.clone().unwrap_or_else(|| "{bin}".into()),
        server: b.server.clone().unwrap_or_default(),
        connect_delay: dur(&b.connect_delay, secs(12)),
        startup_settle: dur(&b.startup_settle, secs(5)),
        busy_input: b.busy_input.unwrap_or(true),
        model_env: b.model_env.unwrap_or(false),
        stop_keys: stop_keys(c, &at("stop_keys"), name, b.stop_keys.as_deref()),
    })
}

/// `stop_keys`: tmux key names, at least one (default `["C-c"]`).
fn stop_keys(
    c: &mut Checker<'_>,
    at: &[Seg<'_>],
    backend: &str,
    keys: Option<&[String]>,
) -> Vec<String> {
    match keys {
        None => vec!["C-c".to_string()],
        Some(k) if k.is_empty() || k.iter().any(|k| k.trim().is_empty()) => {
            c.error(
                at,
                format!("[backend.{backend}].stop_keys must list tmux key names, e.g. [\"C-c\", \"C-c\"]"),
            );
            vec!["C-c".to_string()]
        }
        Some(k) => k.to_vec(),
    }
}

/// A session name tmux can hold: not empty, no `.` or `:` (tmux's target separators).
fn check_session(c: &mut Checker<'_>, path: &[Seg<'_>], who: &str, session: &str) {
    if session.is_empty() || session.contains(['.', ':']) {
        c.error(
            path,
            format!("{who}: session name {session:?} cannot be used by tmux (it must be non-empty, without '.' or ':')"),
        );
    }
}

fn build_agents(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    project_dir: &Path,
    prefix: &str,
    backends: &BTreeMap<String, Backend>,
    env_overrides: Option<EnvLookup<'_>>,
) -> Vec<Agent> {
    let d = &raw.defaults.agent;
    let mut seen = BTreeSet::new();
    let mut checked_secrets = BTreeSet::new();
    let mut agents = Vec::new();
    for (i, a) in raw.agent.iter().enumerate() {
        let at = |key| [Seg::Key("agent"), Seg::Index(i), Seg::Key(key)];
        let Some(name) = a.name.clone().filter(|n| !n.is_empty()) else {
            c.error(
                &[Seg::Key("agent"), Seg::Index(i)],
                format!("[[agent]] number {} has no name", i + 1),
            );
            continue;
        };
        if !seen.insert(name.clone()) {
            c.error(&at("name"), format!("agent {name}: the name is used twice"));
        }
        let who = format!("agent {name}");
        let kind = match a.kind.as_deref().unwrap_or("persistent") {
            "loop" => Kind::Loop,
            "persistent" => Kind::Persistent,
            "task" => Kind::Task,
            "orchestrator" => Kind::Orchestrator,
            other => {
                c.error(
                    &at("kind"),
                    format!(
                        "{who}: kind {other:?} is not one of loop, persistent, task, orchestrator"
                    ),
                );
                Kind::Persistent
            }
        };
        let k = &a.keys;
        let watch_text = k.watch.as_deref().or(d.watch.as_deref()).unwrap_or("none");
        let watch = match watch_text {
            "none" => Watch::None,
            "heal" => Watch::Heal,
            "heal+stall" => Watch::HealStall,
            other => {
                c.error(
                    &at("watch"),
                    format!("{who}: watch {other:?} is not one of none, heal, heal+stall"),
                );
                Watch::None
            }
        };
        let mut backend = k
            .backend
            .clone()
            .or_else(|| d.backend.clone())
            .unwrap_or_default();
        let mut model = k
            .model
            .clone()
            .or_else(|| d.model.clone())
            .unwrap_or_default();
        if let Some(env) = env_overrides {
            if let Some(m) = env(&format!("AGENT_MODEL_{name}")).filter(|m| !m.is_empty()) {
                model = m;
            }
            if let Some(b) = env(&format!("AGENT_BACKEND_{name}")).filter(|b| !b.is_empty()) {
                backend = b;
            }
        }
        if backend.is_empty() {
            c.error(
                &[Seg::Key("agent"), Seg::Index(i)],
                format!("{who} has no backend (set backend on it or in [defaults])"),
            );
        } else if !backends.contains_key(&backend) {
            let known: BTreeSet<&str> = backends
                .keys()
                .chain(&raw.preset_only)
                .map(String::as_str)
                .collect();
            let known: Vec<&str> = known.into_iter().collect();
            c.error(
                &at("backend"),
                format!(
                    "{who}: unknown backend {backend:?} (known: {})",
                    list_or_none(&known)
                ),
            );
        }
        let session = a
            .session
            .clone()
            .unwrap_or_else(|| format!("{prefix}{name}"));
        check_session(c, &at("session"), &who, &session);
        let dir = resolve(
            project_dir,
            k.dir.as_deref().or(d.dir.as_deref()).unwrap_or("."),
        );
        let prompt_file = a.prompt_file.as_deref().map(|p| resolve(project_dir, p));
        if let Some(p) = prompt_file
            .as_ref()
            .filter(|p| kind != Kind::Loop && !p.is_file())
        {
            c.error(
                &at("prompt_file"),
                format!("{who}: prompt_file {} does not exist", p.display()),
            );
        }
        let wake = a.wake.as_ref().map(|w| Wake {
            interval: dur(&w.interval, secs(3600)),
            prompt_file: resolve(project_dir, w.prompt_file.as_deref().unwrap_or("")),
        });
        if let Some(w) = wake.as_ref().filter(|w| !w.prompt_file.is_file()) {
            c.warn(
                &at("wake"),
                format!(
                    "{who}: wake prompt_file {} does not exist; wakes will be skipped",
                    w.prompt_file.display()
                ),
            );
        }
        let mut env = d.env.clone().unwrap_or_default();
        env.extend(k.env.clone().unwrap_or_default());
        let policy = build_policy(c, i, &who, k, d, project_dir, &mut checked_secrets);
        let rotation = rotation::build_rotation(c, i, &who, k, d);
        agents.push(Agent {
            name,
            kind,
            role: a.role.clone().filter(|r| !r.is_empty()),
            backend,
            model,
            session,
            dir,
            watch,
            enabled: k.enabled.or(d.enabled).unwrap_or(true),
            resume: k.resume.or(d.resume).unwrap_or(false),
            hooks: k.hooks.or(d.hooks).unwrap_or(false),
            prompt: a.prompt.clone(),
            prompt_file,
            wake,
            env,
            auto_accept: k
                .auto_accept
                .clone()
                .or_else(|| d.auto_accept.clone())
                .unwrap_or_default(),
            secrets_dir: policy.secrets_dir,
            files: policy.files,
            worktree: policy.worktree,
            grace_period: policy.grace_period,
            timeout: policy.timeout,
            restart: policy.restart,
            heal: policy.heal,
            host: None,
            rotation,
        });
    }
    agents
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn build_services(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    project_dir: &Path,
    prefix: &str,
    agents: &[Agent],
) -> Vec<Service> {
    let mut seen: BTreeSet<String> = agents.iter().map(|a| a.name.clone()).collect();
    let mut services = Vec::new();
    for (i, s) in raw.service.iter().enumerate() {
        let at = |key| [Seg::Key("service"), Seg::Index(i), Seg::Key(key)];
        let Some(name) = s.name.clone().filter(|n| !n.is_empty()) else {
            c.error(
                &[Seg::Key("service"), Seg::Index(i)],
                format!("[[service]] number {} has no name", i + 1),
            );
            continue;
        };
        if !seen.insert(name.clone()) {
            c.error(
                &at("name"),
                format!("service {name}: the name is already used by another agent or service"),
            );
        }
        let command = s.command.clone().unwrap_or_default();
        if command.trim().is_empty() {
            c.error(
                &[Seg::Key("service"), Seg::Index(i)],
                format!("service {name} has no command"),
            );
        }
        let session = format!("{prefix}{name}");
        check_session(c, &at("name"), &format!("service {name}"), &session);
        let mut env = raw.defaults.agent.env.clone().unwrap_or_default();
        env.extend(s.env.clone().unwrap_or_default());
        services.push(Service {
            dir: resolve(project_dir, s.dir.as_deref().unwrap_or(".")),
            name,
            command,
            session,
            enabled: s.enabled.unwrap_or(true),
            env,
            host: None,
        });
    }
    services
}

/// Puts each agent on its host: an unknown host is an error naming the agent; a remote agent's
/// dir is an absolute path on that host (in a container: its dir here, mounted); worktrees are
/// local only.
fn place_agents(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    hosts: &mut BTreeMap<String, Host>,
    agents: &mut [Agent],
) {
    for (i, a) in raw.agent.iter().enumerate() {
        let Some(agent) = a
            .name
            .as_ref()
            .and_then(|n| agents.iter_mut().find(|x| &x.name == n))
        else {
            continue;
        };
        let at = |key| [Seg::Key("agent"), Seg::Index(i), Seg::Key(key)];
        let who = format!("agent {}", agent.name);
        agent.host = hosts::host_of(c, &at("host"), &who, a.host.as_deref(), hosts);
        let Some(host) = agent.host.clone() else {
            continue;
        };
        let dir = a.keys.dir.as_deref().or(raw.defaults.agent.dir.as_deref());
        if let Some(ct) = hosts.get_mut(&host).and_then(|h| h.container.as_mut()) {
            agent.dir = super::containers::place_dir(c, &at("dir"), &who, &host, ct, &agent.dir);
        } else {
            agent.dir = hosts::remote_dir(c, &at("dir"), &who, &host, dir);
        }
        if agent.worktree {
            c.error(
                &at("worktree"),
                format!("{who} runs on host {host}: worktree = true works only on this machine"),
            );
        }
    }
}

/// The same for services.
fn place_services(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    hosts: &mut BTreeMap<String, Host>,
    services: &mut [Service],
) {
    for (i, s) in raw.service.iter().enumerate() {
        let Some(svc) = s
            .name
            .as_ref()
            .and_then(|n| services.iter_mut().find(|x| &x.name == n))
        else {
            continue;
        };
        let at = |key| [Seg::Key("service"), Seg::Index(i), Seg::Key(key)];
        let who = format!("service {}", svc.name);
        svc.host = hosts::host_of(c, &at("host"), &who, s.host.as_deref(), hosts);
        if let Some(host) = svc.host.clone() {
            if let Some(ct) = hosts.get_mut(&host).and_then(|h| h.container.as_mut()) {
                svc.dir = super::containers::place_dir(c, &at("dir"), &who, &host, ct, &svc.dir);
            } else {
                svc.dir = hosts::remote_dir(c, &at("dir"), &who, &host, s.dir.as_deref());
            }
        }
    }
}
