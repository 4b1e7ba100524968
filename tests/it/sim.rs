//! The simulated agent (`orch sim`) as a real process over pipes, in real clones of a bare remote:
//! builder, adversary and task behaviour read back from the remote's git log, and the faults.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);
const CLAIM_PING: &str = "watchdog ping: the other loop pushed a gate CLAIM commit. Pull and verify the claimed gate now.";
const REVIEW_PING: &str =
    "watchdog ping: the other loop pushed a verdict/finding commit. Pull the review file and act.";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@orch.invalid"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {dir:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare "remote" with one commit on main, and clones of it, in a temp dir.
struct Remote {
    tmp: tempfile::TempDir,
}

impl Remote {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        git(
            tmp.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let r = Remote { tmp };
        let seed = r.clone_as("seed");
        std::fs::write(seed.join("README.md"), "# project\n").unwrap();
        git(&seed, &["add", "README.md"]);
        git(&seed, &["commit", "-q", "-m", "init"]);
        git(&seed, &["push", "-q", "origin", "HEAD:main"]);
        r
    }

    fn bare(&self) -> PathBuf {
        self.tmp.path().join("remote.git")
    }

    fn clone_as(&self, name: &str) -> PathBuf {
        git(self.tmp.path(), &["clone", "-q", "remote.git", name]);
        self.tmp.path().join(name)
    }

    fn log_dir(&self) -> PathBuf {
        self.tmp.path().join("logs")
    }

    fn subjects(&self) -> Vec<String> {
        git(&self.bare(), &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn show(&self, path: &str) -> String {
        git(&self.bare(), &["show", &format!("main:{path}")])
    }

    fn wait_for_subject(&self, subject: &str) {
        let end = Instant::now() + DEADLINE;
        while !self.subjects().iter().any(|s| s == subject) {
            assert!(
                Instant::now() < end,
                "no `{subject}` commit on the remote; log: {:?}",
                self.subjects()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Push a commit from a scratch clone that writes `path` with `text`.
    fn push_file(&self, clone: &Path, path: &str, text: &str, subject: &str) {
        git(clone, &["pull", "-q", "--rebase", "origin", "main"]);
        let full = clone.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, text).unwrap();
        git(clone, &["add", path]);
        git(clone, &["commit", "-q", "-m", subject]);
        git(clone, &["push", "-q", "origin", "HEAD:main"]);
    }
}

/// A running `orch sim`; killed on drop.
struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Sim {
    fn start(remote: &Remote, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
        cmd.arg("sim").args(["--step-ms", "20"]).args(args);
        for var in [
            "ORCH_AGENT",
            "ORCH_ROLE",
            "ORCH_KIND",
            "ORCH_SESSION",
            "ORCH_PHASE",
            "ORCH_PLAN",
            "ORCH_STATUS",
            "ORCH_PROJECT_DIR",
            "ORCH_KICKOFF",
            "ORCH_SIM_FAULT",
            "ORCH_SIM_FIND",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("ORCH_PHASE", "p1")
            .env("ORCH_PLAN", "docs/p1-plan.md")
            .env("ORCH_STATUS", "p1-STATUS.md")
            .env("ORCH_LOG_DIR", remote.log_dir());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&out);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Sim {
            stdin: child.stdin.take(),
            child,
            out,
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.output().matches(needle).count()
    }

    /// Wait until `needle` appears at least `times` times in the output.
    fn wait_for_n(&self, needle: &str, times: usize) {
        let end = Instant::now() + DEADLINE;
        while self.count(needle) < times {
            assert!(
                Instant::now() < end,
                "`{needle}` not shown {times}x; screen:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&self, needle: &str) {
        self.wait_for_n(needle, 1);
    }

    /// Wait for the `> ` prompt to be shown for the `n`th time (the sim is ready for input).
    fn wait_for_prompt(&self, n: usize) {
        self.wait_for_n("> ", n);
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn close_input(&mut self) {
        self.stdin = None;
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "sim did not exit; screen:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn builder_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ORCH_AGENT", "builder"),
        ("ORCH_ROLE", "builder"),
        ("ORCH_KIND", "loop"),
    ]
}

fn adversary_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ORCH_AGENT", "adversary"),
        ("ORCH_ROLE", "adversary"),
        ("ORCH_KIND", "loop"),
    ]
}

fn seed_claim(remote: &Remote, scratch: &Path, subject: &str) {
    let text = format!("# p1 work\n\n- done: {subject}\n");
    remote.push_file(scratch, "work/p1.md", &text, subject);
}

#[test]
fn builder_start_pushes_a_claim_with_real_work() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let mut sim = Sim::start(&remote, &dir, &builder_env(), &["Build phase p1."]);
    remote.wait_for_subject("claim: p1");
    let work = remote.show("work/p1.md");
    assert!(work.lines().count() >= 5, "thin work file:\n{work}");
    sim.wait_for_prompt(1);
    sim.close_input();
    assert!(sim.wait_exit().success());
    let screen = sim.output();
    assert!(screen.starts_with("orch-sim "), "no banner:\n{screen}");
    assert!(screen.contains("· builder (builder, phase p1)"));
    assert!(screen.contains("› Build phase p1."));
    // The status line is shown while working and always erased afterwards.
    let shown = screen.matches("(esc to interrupt)").count();
    assert!(shown > 0, "never showed the status line:\n{screen}");
    assert_eq!(
        screen.matches("(esc to interrupt)\r\x1b[2K").count(),
        shown,
        "a status line was left on screen:\n{screen:?}"
    );
}

#[test]
fn builder_marks_status_done_after_an_ok_review_ping() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let scratch = remote.clone_as("scratch");
    let mut sim = Sim::start(&remote, &dir, &builder_env(), &["Build phase p1."]);
    remote.wait_for_subject("claim: p1");
    sim.wait_for_prompt(1);
    let review = "# Review\n\n## Review 1\nverdict: ok\n- fine\n";
    remote.push_file(&scratch, "REVIEW-p1.md", review, "review: p1 ok");
    sim.send(REVIEW_PING);
    remote.wait_for_subject("status: p1 done");
    let status = remote.show("p1-STATUS.md");
    let after_marker: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with("## DONE"))
        .skip(1)
        .collect();
    assert_eq!(
        after_marker.first().copied(),
        Some("Phase p1 built and approved by the adversary."),
        "STATUS file:\n{status}"
    );
    assert!(sim.output().contains(&format!("› {REVIEW_PING}")));
}

#[test]
fn builder_answers_a_finding_with_a_fix_claim() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let scratch = remote.clone_as("scratch");
    let mut sim = Sim::start(&remote, &dir, &builder_env(), &["Build phase p1."]);
    remote.wait_for_subject("claim: p1");
    sim.wait_for_prompt(1);
    let review = "# Review\n\n## Review 1\nverdict: finding\n- tests are missing\n";
    remote.push_file(&scratch, "REVIEW-p1.md", review, "review: p1 finding");
    sim.send(REVIEW_PING);
    remote.wait_for_subject("claim: p1 (fix)");
    assert!(remote.show("work/p1.md").contains("tests are missing"));
    assert!(!remote.subjects().iter().any(|s| s.starts_with("status:")));
}

#[test]
fn adversary_approves_a_claim_on_a_claim_ping() {
    let remote = Remote::new();
    let dir = remote.clone_as("adversary");
    let scratch = remote.clone_as("scratch");
    let mut sim = Sim::start(&remote, &dir, &adversary_env(), &[]);
    sim.wait_for_prompt(1);
    assert!(!sim.output().contains("Pulling"), "worked before any ping");
    seed_claim(&remote, &scratch, "claim: p1");
    sim.send(CLAIM_PING);
    remote.wait_for_subject("review: p1 ok");
    assert!(remote.show("REVIEW-p1.md").contains("verdict: ok"));
}

#[test]
fn adversary_with_find_raises_one_finding_then_approves() {
    let remote = Remote::new();
    let dir = remote.clone_as("adversary");
    let scratch = remote.clone_as("scratch");
    let mut sim = Sim::start(&remote, &dir, &adversary_env(), &["--find"]);
    sim.wait_for_prompt(1);
    seed_claim(&remote, &scratch, "claim: p1");
    sim.send(CLAIM_PING);
    remote.wait_for_subject("review: p1 finding");
    sim.wait_for_prompt(2);
    seed_claim(&remote, &scratch, "claim: p1 (fix)");
    sim.send(CLAIM_PING);
    remote.wait_for_subject("review: p1 ok");
    let reviews: Vec<String> = remote
        .subjects()
        .into_iter()
        .filter(|s| s.starts_with("review:"))
        .collect();
    assert_eq!(reviews, vec!["review: p1 ok", "review: p1 finding"]);
    let file = remote.show("REVIEW-p1.md");
    assert!(file.find("verdict: finding") < file.find("verdict: ok"));
}

#[test]
fn adversary_takes_find_once_from_a_kickoff_file_it_is_told_to_read() {
    let remote = Remote::new();
    let dir = remote.clone_as("adversary");
    let scratch = remote.clone_as("scratch");
    let kickoff = remote.tmp.path().join("kickoff.md");
    std::fs::write(&kickoff, "# Review phase p1\nORCH-SIM: find-once\n").unwrap();
    seed_claim(&remote, &scratch, "claim: p1");
    let mut sim = Sim::start(&remote, &dir, &adversary_env(), &[]);
    sim.wait_for_prompt(1);
    sim.send(&format!("read {} and follow it", kickoff.display()));
    remote.wait_for_subject("review: p1 finding");
    assert!(sim.output().contains("Read the kickoff (2 lines)"));
}

#[test]
fn task_writes_its_done_file_and_exits_0() {
    let remote = Remote::new();
    let dir = remote.clone_as("task");
    let env = [
        ("ORCH_AGENT", "finisher"),
        ("ORCH_ROLE", "finisher"),
        ("ORCH_KIND", "task"),
    ];
    let mut sim = Sim::start(&remote, &dir, &env, &["Wrap up."]);
    let status = sim.wait_exit();
    assert!(status.success(), "task exited {status:?}");
    let done = std::fs::read_to_string(remote.log_dir().join("task-finisher.done")).unwrap();
    assert!(done.starts_with("orch-sim task finisher done 20"), "{done}");
    assert!(sim.output().contains(done.trim()));
}

#[test]
fn crash_fault_exits_1_after_the_first_step() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let mut sim = Sim::start(
        &remote,
        &dir,
        &builder_env(),
        &["--fault", "crash", "Build phase p1."],
    );
    let status = sim.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert!(remote.subjects().iter().any(|s| s == "claim: p1"));
}

#[test]
fn exit0_fault_exits_0_after_the_first_step() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let mut sim = Sim::start(
        &remote,
        &dir,
        &[("ORCH_ROLE", "builder"), ("ORCH_SIM_FAULT", "exit0")],
        &["Build phase p1."],
    );
    assert_eq!(sim.wait_exit().code(), Some(0));
    assert!(remote.subjects().iter().any(|s| s == "claim: p1"));
}

#[test]
fn limit_fault_shows_a_reset_banner_and_repeats_it_while_limited() {
    let remote = Remote::new();
    let dir = remote.clone_as("builder");
    let mut sim = Sim::start(
        &remote,
        &dir,
        &builder_env(),
        &[
            "--fault",
            "limit",
            "--limit-secs",
            "3600",
            "Build phase p1.",
        ],
    );
    sim.wait_for("Limit reached · resets ");
    let re = regex::Regex::new(r"Limit reached · resets \d{1,2}:\d{2}(am|pm)\n").unwrap();
    assert!(re.is_match(&sim.output()), "{}", sim.output());
    sim.wait_for_prompt(1);
    sim.send("watchdog probe: if the quota window has reset, RESUME now");
    sim.wait_for_n("Limit reached · resets ", 2);
    sim.close_input();
    assert!(sim.wait_exit().success());
    assert!(
        !sim.output().contains("esc to interrupt"),
        "worked while limited"
    );
    assert!(!remote.subjects().iter().any(|s| s.starts_with("claim")));
}

#[test]
fn fatal_fault_prints_the_error_and_then_ignores_input() {
    let remote = Remote::new();
    let dir = remote.clone_as("super");
    let env = [("ORCH_ROLE", "supervisor"), ("ORCH_KIND", "persistent")];
    let mut sim = Sim::start(&remote, &dir, &env, &["--fault", "fatal"]);
    sim.wait_for_prompt(1);
    sim.send("first");
    sim.wait_for("Error: session state corrupt");
    sim.send("second");
    sim.close_input();
    assert!(sim.wait_exit().success());
    let screen = sim.output();
    assert!(screen.contains("Noted: first"));
    assert!(
        !screen.contains("second"),
        "answered after the fatal error:\n{screen}"
    );
}

#[test]
fn waiting_until_fault_leaves_the_marker_as_the_last_line() {
    let remote = Remote::new();
    let dir = remote.clone_as("super");
    let env = [("ORCH_ROLE", "supervisor"), ("ORCH_KIND", "orchestrator")];
    let mut sim = Sim::start(
        &remote,
        &dir,
        &env,
        &[
            "--fault",
            "waiting-until=2030-01-01T09:00:00Z",
            "Supervise.",
        ],
    );
    sim.wait_for("WAITING-UNTIL: 2030-01-01T09:00:00Z");
    sim.send("anyone there?");
    sim.close_input();
    assert!(sim.wait_exit().success());
    let screen = sim.output();
    let last = screen
        .split('\n')
        // What a terminal shows of each line: the text after its last erase.
        .filter_map(|l| l.rsplit("\r\x1b[2K").next())
        .rfind(|l| !l.trim().is_empty());
    assert_eq!(last, Some("WAITING-UNTIL: 2030-01-01T09:00:00Z"));
}

#[test]
fn hang_fault_stops_answering_after_the_first_step() {
    let remote = Remote::new();
    let dir = remote.clone_as("super");
    let env = [("ORCH_ROLE", "supervisor"), ("ORCH_KIND", "persistent")];
    let mut sim = Sim::start(&remote, &dir, &env, &["--fault", "hang"]);
    sim.wait_for_prompt(1);
    sim.send("first");
    sim.wait_for("Noted: first");
    sim.send("second");
    sim.close_input();
    // A live sim exits at once on end of input; a hung one does not.
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        assert!(sim.child.try_wait().unwrap().is_none(), "hung sim exited");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!sim.output().contains("second"));
}

#[test]
fn persistent_agent_echoes_each_line_and_keeps_running() {
    let remote = Remote::new();
    let dir = remote.clone_as("super");
    let env = [("ORCH_ROLE", "supervisor"), ("ORCH_KIND", "persistent")];
    let mut sim = Sim::start(&remote, &dir, &env, &[]);
    sim.wait_for_prompt(1);
    sim.send("check the fleet");
    sim.wait_for("Noted: check the fleet");
    sim.send("and again");
    sim.wait_for("Noted: and again");
    sim.wait_for_prompt(3);
    assert!(sim.child.try_wait().unwrap().is_none());
    assert!(sim.output().contains("› check the fleet"));
}
