//! `orch hosts` for a container host: the engine answers, the image is on this machine, and
//! tmux (and orch_bin) run in it: in the running container, else in a throwaway one.
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use super::{CHECK_SCRIPT, CHECK_TIMEOUT, HostCheck, failed};
use crate::config::{Config, Host};
use crate::fleet::containers;
use crate::transport::Place;
use crate::transport::process;

#[derive(Debug, Serialize)]
pub struct ContainerCheck {
    pub engine: String,
    pub engine_version: Option<String>,
    pub image: String,
    pub image_present: bool,
    /// The container's name, and its id and state when there is one.
    pub name: String,
    pub id: Option<String>,
    pub state: Option<String>,
}

/// Runs `program args` to its end or the check timeout: `(exit ok, stdout, stderr)`, or why
/// it did not run.
fn run(program: &str, args: &[&str]) -> Result<(bool, String, String), String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    process::run(&mut cmd, None, CHECK_TIMEOUT)
        .map(|d| (d.status.success(), d.stdout, d.stderr))
        .map_err(|e| e.to_string())
}

pub(super) fn check(cfg: &Config, h: &Host) -> HostCheck {
    let (Some(ct), Some(place)) = (h.container.as_ref(), containers::place(cfg, h)) else {
        return failed(h, format!("host {} is not a container host", h.name));
    };
    let mut c = failed(h, String::new());
    c.problems.clear();
    let mut report = ContainerCheck {
        engine: ct.engine.clone(),
        engine_version: None,
        image: ct.image.clone(),
        image_present: false,
        name: place.spec().container.clone(),
        id: None,
        state: None,
    };
    match run(&ct.engine, &["--version"]) {
        Ok((true, out, _)) => report.engine_version = out.lines().next().map(String::from),
        Ok((false, _, err)) => c.problems.push(format!(
            "{} --version fails on this machine ({}): fix the engine for host {}",
            ct.engine,
            err.trim(),
            h.name
        )),
        Err(e) => c.problems.push(format!(
            "the container engine {} of host {} does not run here ({e}): install it, or set engine = \"podman\" or \"docker\"",
            ct.engine, h.name
        )),
    }
    if report.engine_version.is_none() {
        c.container = Some(report);
        return c;
    }
    c.reachable = true;
    report.image_present = matches!(
        run(
            &ct.engine,
            &["image", "inspect", "--format", "{{.Id}}", &ct.image]
        ),
        Ok((true, _, _))
    );
    if !report.image_present {
        c.problems.push(format!(
            "image {} of host {} is not on this machine: build or pull it first (`{} pull {}`); orch never pulls inside a tick",
            ct.image, h.name, ct.engine, ct.image
        ));
    }
    let seen = place.inspect(CHECK_TIMEOUT).ok();
    report.id = seen.as_ref().and_then(|s| s.id.clone());
    report.state = seen.as_ref().and_then(|s| s.state.clone());
    let running = seen.as_ref().is_some_and(|s| s.running());
    let argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        CHECK_SCRIPT.into(),
        "orch-check".into(),
        h.orch_bin.clone(),
    ];
    let out = if running {
        place
            .probe(&argv, None, CHECK_TIMEOUT)
            .map(|o| o.stdout)
            .map_err(|e| e.to_string())
    } else if report.image_present {
        // No container yet: the image's tools, in a throwaway container with the host's options.
        let mut args: Vec<&str> = vec!["run", "--rm", "--pull=never"];
        args.extend(ct.options.iter().map(String::as_str));
        args.push(&ct.image);
        args.extend(argv.iter().map(String::as_str));
        run(&ct.engine, &args).map(|(_, out, _)| out)
    } else {
        Err(String::new())
    };
    let stdout = match out {
        Ok(s) => s,
        Err(e) => {
            if !e.is_empty() {
                c.problems.push(format!(
                    "cannot run a command in the container of host {}: {e}",
                    h.name
                ));
            }
            c.container = Some(report);
            return c;
        }
    };
    if running {
        let start = Instant::now();
        c.latency_ms = place
            .probe(&["true".to_string()], None, CHECK_TIMEOUT)
            .ok()
            .map(|_| u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
    }
    let field = |tag: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    c.tmux_version = field("tmux:");
    c.orch_version = field("orch:");
    if c.tmux_version.is_none() {
        c.problems.push(format!(
            "tmux is not in image {} of host {}: install tmux 3.2 or newer in the image",
            ct.image, h.name
        ));
    }
    if c.orch_version.is_none() {
        c.problems.push(format!(
            "orch_bin {:?} does not run in image {} of host {}: add orch to the image or set orch_bin (needed only for `bin = \"orch ...\"` backends and hooks)",
            h.orch_bin, ct.image, h.name
        ));
    }
    c.container = Some(report);
    c
}
