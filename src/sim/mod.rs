//! sim: the simulated coding agent (`orch sim`), a deterministic, offline stand-in for a coding-agent
//! TUI that plays builder, adversary, task or supervisor through real git, with faults on demand.
mod claude;
mod fault;
mod git;
pub mod headless;
mod roles;
mod rotation;
mod screen;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Local};

pub use fault::{Fault, limit_banner, limit_reset_time};
pub use roles::{latest_verdict, status_is_done, subject_is};
pub use screen::WORKING;

use crate::{Error, Result};
use git::Checkout;
use roles::StepError;
use screen::Screen;

/// Options of the simulated agent. Its identity comes from the ORCH_* environment.
///
/// A shared-account limit: every sim with ORCH_SIM_ACCOUNT_LIMIT_FILE=<file> plays one account;
/// while the file holds `until=<unix seconds>` still ahead, a sim asked to work (kickoff or any
/// typed line) shows `Claude AI usage limit reached|<until>` instead, and works again on the
/// first line typed after that time.
///
/// Example: ORCH_ROLE=builder ORCH_KIND=loop ORCH_PHASE=p1 orch sim --fault limit-after-claim "kickoff text"
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Milliseconds one step of work takes.
    #[arg(long, default_value_t = 150)]
    pub step_ms: u64,
    /// Seconds until a simulated usage limit resets (rounded up to the next minute).
    #[arg(long, default_value_t = 60)]
    pub limit_secs: u64,
    /// The model it pretends to run (shown in the banner), as a backend's model flag passes it.
    #[arg(long, default_value = "sim-default")]
    pub model: String,
    /// Adversary: raise one finding before approving (also ORCH_SIM_FIND=1).
    #[arg(long)]
    pub find: bool,
    /// A fault to play: limit, limit-after-claim, crash, crash-at-start, hang, fatal,
    /// waiting-until=<ISO>, exit0, bypass-dialog, refuse-root, network-error, compact; for a
    /// handoff request: no-handoff, dirty-handoff, compact-in-handoff; on typed pings
    /// swallow-enter[=N], absorb-prompt, echo-twice. Repeatable; also ORCH_SIM_FAULT (comma-separated).
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Play the --fault and ORCH_SIM_FAULT faults only in this phase (ORCH_PHASE); in any other
    /// phase the sim runs clean.
    #[arg(long, value_name = "ID")]
    pub fault_phase: Option<String>,
    /// Resume a conversation (accepted as a backend's resume flag passes it; shown in the banner).
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
    /// The kickoff prompt text (the "arg" delivery).
    #[arg(allow_hyphen_values = true)]
    pub kickoff: Option<String>,
}

/// Who the sim is, read from the ORCH_* environment.
#[derive(Debug, Clone)]
pub struct Identity {
    pub agent: String,
    pub role: String,
    pub kind: String,
    pub phase: String,
    pub plan: Option<String>,
    pub status: String,
    pub log_dir: Option<PathBuf>,
}

impl Identity {
    /// Read ORCH_AGENT, ORCH_ROLE, ORCH_KIND, ORCH_PHASE, ORCH_PLAN, ORCH_STATUS, ORCH_LOG_DIR.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let role = var("ORCH_ROLE").unwrap_or_else(|| "builder".into());
        let kind = var("ORCH_KIND").unwrap_or_else(|| match role.as_str() {
            "builder" | "adversary" => "loop".into(),
            _ => "persistent".into(),
        });
        let phase = var("ORCH_PHASE").unwrap_or_else(|| "p1".into());
        Identity {
            agent: var("ORCH_AGENT").unwrap_or_else(|| role.clone()),
            status: var("ORCH_STATUS").unwrap_or_else(|| format!("{phase}-STATUS.md")),
            plan: var("ORCH_PLAN"),
            log_dir: var("ORCH_LOG_DIR").map(PathBuf::from),
            role,
            kind,
            phase,
        }
    }
}

/// What the sim does with its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Builder,
    Adversary,
    Task,
    Echo,
}

fn behaviour_of(id: &Identity) -> Behaviour {
    match (id.kind.as_str(), id.role.as_str()) {
        ("task", _) => Behaviour::Task,
        ("loop", "builder") => Behaviour::Builder,
        ("loop", "adversary") => Behaviour::Adversary,
        _ => Behaviour::Echo,
    }
}

/// Why a step runs.
enum Trigger {
    Kickoff,
    /// A ping meant for this role, or the watchdog's limit probe.
    Ping,
    Other(String),
}

enum Mode {
    Ready,
    Limited(DateTime<Local>),
    /// The shared account is out of quota (`ORCH_SIM_ACCOUNT_LIMIT_FILE`): the file decides
    /// when it lifts.
    AccountLimited,
    /// Fatal or waiting: reads input, prints nothing.
    Idle,
    /// The turn ended on a network error: every line gets the error again.
    Offline,
}

enum Flow {
    Continue,
    Exit(u8),
    Hang,
}

struct Sim {
    id: Identity,
    behaviour: Behaviour,
    scr: Screen,
    clone: Checkout,
    faults: Vec<Fault>,
    find: bool,
    /// Adversary: wait this long before reviewing a pinged claim (ORCH_SIM_REVIEW_DELAY_MS).
    review_delay: Duration,
    /// Adversary: at the kickoff only check in, review only when pinged (ORCH_SIM_PING_ONLY=1),
    /// as an agent that does not look for a waiting claim by itself.
    ping_only: bool,
    limit_secs: u64,
    model: String,
    steps: u32,
    mode: Mode,
    /// The resume id it was started with (`--resume`).
    resumed: Option<String>,
    /// Context, hook records and compactions, as the real statusline and hooks report them.
    report: rotation::Reporter,
    /// Claude's hooks and transcript (ORCH_SIM_HOOKS=1).
    claude: claude::Claude,
    /// Text left in the input box by a swallowed submit.
    pending: Option<String>,
}

/// Run the simulated agent on this terminal until it exits (or forever).
pub fn run(args: SimArgs) -> Result<ExitCode> {
    let mut faults = Vec::new();
    let env_faults = std::env::var("ORCH_SIM_FAULT").unwrap_or_default();
    for spec in args
        .faults
        .iter()
        .map(String::as_str)
        .chain([env_faults.as_str()])
    {
        faults.extend(Fault::parse_list(spec).map_err(Error::Usage)?);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io(".", "finding the sim's working folder", e))?;
    let id = Identity::from_env();
    if args.fault_phase.as_ref().is_some_and(|p| *p != id.phase) {
        faults.clear();
    }
    let report = rotation::Reporter::from_env(&id);
    let claude = claude::Claude::from_env(&id);
    let mut sim = Sim {
        behaviour: behaviour_of(&id),
        id,
        scr: Screen::new(Duration::from_millis(args.step_ms)),
        clone: Checkout::new(cwd),
        faults,
        find: args.find || std::env::var("ORCH_SIM_FIND").is_ok_and(|v| v.trim() == "1"),
        review_delay: Duration::from_millis(
            std::env::var("ORCH_SIM_REVIEW_DELAY_MS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        ),
        ping_only: std::env::var("ORCH_SIM_PING_ONLY").is_ok_and(|v| v.trim() == "1"),
        limit_secs: args.limit_secs,
        model: args.model,
        steps: 0,
        mode: Mode::Ready,
        resumed: args.resume.filter(|r| !r.is_empty()),
        report,
        claude,
        pending: None,
    };
    sim.banner()?;
    sim.report.started(sim.resumed.is_some());
    if sim.faults.contains(&Fault::CrashAtStart) {
        sim.scr
            .say("Error: orch-sim crashed at start (simulated fault)")?;
        return Ok(ExitCode::from(1));
    }
    if sim.faults.contains(&Fault::RefuseRoot) {
        sim.scr.say(fault::ROOT_REFUSAL)?;
        return Ok(ExitCode::from(1));
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    if sim.faults.contains(&Fault::BypassDialog) && !sim.bypass_dialog(&mut input)? {
        return Ok(ExitCode::from(1));
    }
    let mut flow = match args.kickoff {
        Some(text) if sim.faults.contains(&Fault::NetworkError) => {
            // Echoed in full (as Claude shows a prompt), then the turn fails.
            let mut lines = text.lines();
            sim.scr.echo_input(lines.next().unwrap_or_default())?;
            for l in lines {
                sim.scr.say(&format!("  {l}"))?;
            }
            sim.scr.say(fault::API_ERROR)?;
            sim.mode = Mode::Offline;
            Flow::Continue
        }
        Some(text) => {
            let first = text.lines().next().unwrap_or_default();
            sim.claude.prompt_submitted(&text);
            sim.scr.echo_input(first)?;
            sim.kickoff(&text)?
        }
        None => Flow::Continue,
    };
    loop {
        match flow {
            Flow::Continue => {}
            Flow::Exit(code) => return Ok(ExitCode::from(code)),
            Flow::Hang => hang_forever(),
        }
        if !matches!(sim.mode, Mode::Idle) && sim.pending.is_none() {
            sim.scr.prompt()?;
        }
        let mut line = String::new();
        let read = input
            .read_line(&mut line)
            .map_err(|e| Error::io("<stdin>", "reading the sim's input", e))?;
        if read == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        flow = match sim.receive(line.trim_end_matches(['\n', '\r']))? {
            Some(line) => sim.on_line(&line)?,
            None => Flow::Continue,
        };
    }
}

fn hang_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The kickoff path of a `read <path> and follow it` line.
fn read_line_path(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("read ")?;
    let end = rest.rfind(" and follow it")?;
    let path = rest[..end].trim().trim_matches(['\'', '"']);
    (!path.is_empty()).then_some(path)
}

impl Sim {
    fn banner(&mut self) -> Result<()> {
        let mut line = format!(
            "orch-sim {} · {} ({}, phase {}) · model {}",
            env!("CARGO_PKG_VERSION"),
            self.id.agent,
            self.id.role,
            self.id.phase,
            self.model
        );
        if let Some(id) = &self.resumed {
            line.push_str(&format!(" · resumed {id}"));
        }
        self.scr.say(&line)
    }

    /// The `bypass-dialog` fault: draw the warning and read one answer. True when accepted
    /// (the line held the Down key); otherwise it says so and the sim exits, as Claude does.
    fn bypass_dialog(&mut self, input: &mut impl BufRead) -> Result<bool> {
        self.scr.say(fault::BYPASS_DIALOG)?;
        let mut line = String::new();
        input
            .read_line(&mut line)
            .map_err(|e| Error::io("<stdin>", "reading the sim's input", e))?;
        if line.contains("\x1b[B") || line.contains("\x1bOB") {
            self.scr.clear()?;
            self.banner()?;
            return Ok(true);
        }
        self.scr
            .say("No, exit: bypass permissions mode declined.")?;
        Ok(false)
    }

    /// A submitted line as the sim takes it: with the text a swallowed submit left in the input
    /// box before it; None while the `swallow-enter` fault keeps it there (redrawn in the box).
    fn receive(&mut self, line: &str) -> Result<Option<String>> {
        let full = match self.pending.take() {
            Some(held) => format!("{held}{line}"),
            None => line.to_string(),
        };
        if !full.contains("[orch:ping ") {
            return Ok(Some(full));
        }
        let Some(at) = self
            .faults
            .iter()
            .position(|f| matches!(f, Fault::SwallowEnter(_)))
        else {
            return Ok(Some(full));
        };
        if let Fault::SwallowEnter(n) = &mut self.faults[at] {
            *n -= 1;
            if *n == 0 {
                self.faults.remove(at);
            }
        }
        self.scr.keep_in_input(&full)?;
        self.pending = Some(full);
        Ok(None)
    }

    /// Claude's side effects of a submitted line: the UserPromptSubmit hook and a transcript
    /// row, or (the `absorb-prompt` fault, on a ping) only a queued-command row.
    fn submitted(&mut self, line: &str) {
        if line.contains("[orch:ping ") && self.take_fault(|f| *f == Fault::AbsorbPrompt).is_some()
        {
            self.claude.prompt_absorbed(line);
        } else {
            self.claude.prompt_submitted(line);
        }
    }

    fn on_line(&mut self, line: &str) -> Result<Flow> {
        if !matches!(self.mode, Mode::Idle) {
            self.submitted(line);
            if line.contains("[orch:ping ") && self.take_fault(|f| *f == Fault::EchoTwice).is_some()
            {
                self.scr.echo_input(line)?;
            }
        }
        match self.mode {
            Mode::Idle => Ok(Flow::Continue),
            Mode::Offline => {
                self.scr.echo_input(line)?;
                self.scr.say(fault::API_ERROR)?;
                Ok(Flow::Continue)
            }
            Mode::AccountLimited => {
                self.scr.echo_input(line)?;
                if let Some(until) = fault::account_limit_until(Local::now().timestamp()) {
                    self.scr.say(&fault::account_banner(until))?;
                    return Ok(Flow::Continue);
                }
                self.resume_after_limit(line)
            }
            Mode::Limited(until) => {
                self.scr.echo_input(line)?;
                if Local::now() < until {
                    self.scr.say(&limit_banner(&until))?;
                    return Ok(Flow::Continue);
                }
                self.resume_after_limit(line)
            }
            Mode::Ready => {
                self.scr.echo_input(line)?;
                if let Some(req) = rotation::parse_request(line) {
                    return self.handoff(&req);
                }
                if let Some(path) = read_line_path(line) {
                    let path = self.clone.dir().join(path);
                    return match std::fs::read_to_string(&path) {
                        Ok(text) => self.kickoff(&text),
                        Err(e) => {
                            self.scr
                                .say(&format!("⚠ could not read {}: {e}", path.display()))?;
                            Ok(Flow::Continue)
                        }
                    };
                }
                let trigger = self.classify(line);
                self.work(trigger)
            }
        }
    }

    /// The limit is over: clear the screen (no banner left on it) and work on `line`.
    fn resume_after_limit(&mut self, line: &str) -> Result<Flow> {
        self.scr.clear()?;
        self.banner()?;
        self.scr.echo_input(line)?;
        // Worded so that it does not match a limit_re ("usage limit"): a resumed agent is not limited.
        self.scr.say("Quota window reset; resuming.")?;
        self.mode = Mode::Ready;
        self.work(Trigger::Ping)
    }

    fn classify(&self, line: &str) -> Trigger {
        let lower = line.to_lowercase();
        let probe = lower.contains("quota") || lower.contains("resume");
        let ping = match self.behaviour {
            Behaviour::Builder => lower.contains("verdict") || lower.contains("review"),
            Behaviour::Adversary => lower.contains("claim"),
            Behaviour::Task | Behaviour::Echo => false,
        };
        if probe || ping {
            Trigger::Ping
        } else {
            Trigger::Other(line.to_string())
        }
    }

    /// Take in a kickoff prompt: apply its `ORCH-SIM:` directives, then start work.
    fn kickoff(&mut self, text: &str) -> Result<Flow> {
        for directive in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ORCH-SIM:"))
            .map(str::trim)
        {
            if directive == "find-once" {
                self.find = true;
            } else if let Some(spec) = directive.strip_prefix("fault=") {
                match Fault::parse_list(spec) {
                    Ok(faults) => self.faults.extend(faults),
                    Err(e) => self.scr.say(&format!("⚠ {e}"))?,
                }
            }
        }
        self.scr.say(&format!(
            "● Read the kickoff ({} lines)",
            text.lines().count()
        ))?;
        if let Some(note) = rotation::note_in_kickoff(text) {
            let lines = std::fs::read_to_string(self.clone.dir().join(note))
                .map(|t| t.lines().count())
                .unwrap_or(0);
            self.scr
                .say(&format!("● Read the handoff note {note} ({lines} lines)"))?;
        }
        self.work(Trigger::Kickoff)
    }

    /// Run one step for `trigger`, then play any fault that is due.
    fn work(&mut self, trigger: Trigger) -> Result<Flow> {
        if let Some(until) = fault::account_limit_until(Local::now().timestamp()) {
            self.mode = Mode::AccountLimited;
            self.scr.say(&fault::account_banner(until))?;
            return Ok(Flow::Continue);
        }
        if self.steps == 0 && self.take_fault(|f| *f == Fault::Limit).is_some() {
            self.enter_limit()?;
            return Ok(Flow::Continue);
        }
        self.scr.begin_step()?;
        let result = match (self.behaviour, trigger) {
            (Behaviour::Builder, Trigger::Kickoff | Trigger::Ping) => {
                roles::builder_sync(&mut self.scr, &self.clone, &self.id)
            }
            (Behaviour::Adversary, Trigger::Kickoff) if self.ping_only => self
                .scr
                .say("Checked in; waiting for a ping.")
                .map_err(StepError::from),
            (Behaviour::Adversary, Trigger::Kickoff | Trigger::Ping) => {
                std::thread::sleep(self.review_delay);
                roles::adversary_sync(&mut self.scr, &self.clone, &self.id, self.find)
            }
            (Behaviour::Task, _) => roles::task_done(&mut self.scr, &self.id),
            (_, Trigger::Other(line)) => self
                .scr
                .say(&format!("Noted: {line}"))
                .map_err(StepError::from),
            (_, _) => self
                .scr
                .say("Checked in; nothing to do right now.")
                .map_err(StepError::from),
        };
        match result {
            Ok(()) => {}
            Err(StepError::Screen(e)) => return Err(e),
            Err(e) => self.scr.say(&format!("⚠ {e}"))?,
        }
        self.scr.end_step()?;
        self.steps += 1;
        self.report.turn_done();
        let flow = if self.steps == 1 {
            self.after_first_step()?
        } else {
            Flow::Continue
        };
        match (flow, self.behaviour) {
            (Flow::Continue, Behaviour::Task) if matches!(self.mode, Mode::Ready) => {
                Ok(Flow::Exit(0))
            }
            (flow, _) => Ok(flow),
        }
    }

    fn take_fault(&mut self, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let at = self.faults.iter().position(pick)?;
        Some(self.faults.remove(at))
    }

    /// Play the first fault that is due once the first step is over.
    fn after_first_step(&mut self) -> Result<Flow> {
        let Some(fault) = self.take_fault(|f| {
            !f.on_input()
                && !matches!(
                    f,
                    Fault::Limit
                        | Fault::CrashAtStart
                        | Fault::BypassDialog
                        | Fault::RefuseRoot
                        | Fault::NetworkError
                        | Fault::NoHandoff
                        | Fault::DirtyHandoff
                        | Fault::CompactInHandoff
                )
        }) else {
            return Ok(Flow::Continue);
        };
        match fault {
            Fault::LimitAfterClaim => self.enter_limit()?,
            Fault::Crash => {
                self.scr.say("Error: orch-sim crashed (simulated fault)")?;
                return Ok(Flow::Exit(1));
            }
            Fault::Exit0 => return Ok(Flow::Exit(0)),
            Fault::Hang => return Ok(Flow::Hang),
            Fault::Fatal => {
                self.scr.say("Error: session state corrupt")?;
                self.mode = Mode::Idle;
            }
            Fault::WaitingUntil(iso) => {
                self.scr.say(&format!("WAITING-UNTIL: {iso}"))?;
                self.mode = Mode::Idle;
            }
            Fault::Compact => self.report.compact(&mut self.scr)?,
            Fault::Limit
            | Fault::CrashAtStart
            | Fault::BypassDialog
            | Fault::RefuseRoot
            | Fault::NetworkError
            | Fault::NoHandoff
            | Fault::DirtyHandoff
            | Fault::CompactInHandoff
            | Fault::SwallowEnter(_)
            | Fault::AbsorbPrompt
            | Fault::EchoTwice => {}
        }
        Ok(Flow::Continue)
    }

    fn enter_limit(&mut self) -> Result<()> {
        let until = limit_reset_time(Local::now(), self.limit_secs);
        self.mode = Mode::Limited(until);
        let banner = limit_banner(&until);
        self.scr.say(&banner)?;
        self.claude.limit_hit(&banner);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_lines_name_their_kickoff_file() {
        assert_eq!(
            read_line_path("read /tmp/k.md and follow it"),
            Some("/tmp/k.md")
        );
        assert_eq!(
            read_line_path("read '/tmp/a b.md' and follow it."),
            Some("/tmp/a b.md")
        );
        assert_eq!(read_line_path("please review"), None);
    }
}
