//! `cargo bench --bench fleet`: orch's cost on fleets of 10, 100 and 300 tmux sessions against
//! the floor (one bare `tmux list-panes -a`) and the reference tool `agents.py`; prints tables.
//!
//! Everything runs on a private tmux server: `TMUX_TMPDIR` is a fresh temp dir, so the default
//! socket that both orch (no `tmux_socket` set) and the reference use is private; it is killed
//! at the end. Timings run the real tmux; separate counting runs put a `tmux` wrapper first on
//! `PATH` that logs every tmux process spawned.
//! Skips (exit 0, message) without tmux; the reference columns only with `ORCH_REFERENCE` set
//! to the reference's agents.py (and python3 on PATH).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [10, 100, 300];
const RUNS: usize = 11;
const REF_RUNS: usize = 3;
const TICKS: usize = 5;
const FLOOR_FORMAT: &str = "#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{window_activity}\t#{window_index}\t#{pane_index}\t#{pane_current_command}\t#{session_name}";

fn main() {
    // The Python reference is compared only when ORCH_REFERENCE points at its agents.py.
    let reference = std::env::var_os("ORCH_REFERENCE").map(PathBuf::from);
    if which("tmux").is_none() {
        println!("fleet bench skipped: tmux is not on PATH");
        return;
    }
    let reference = match reference {
        Some(r) if r.is_file() && which("python3").is_some() => Some(r),
        Some(r) => {
            println!(
                "reference columns skipped: {} is not a file or python3 is missing",
                r.display()
            );
            None
        }
        None => {
            println!("reference columns skipped: set ORCH_REFERENCE=/path/to/agents.py to compare");
            None
        }
    };
    let bench = match Bench::new(reference) {
        Ok(b) => b,
        Err(e) => {
            println!("fleet bench skipped: {e}");
            return;
        }
    };
    let rows: Vec<Row> = SIZES.iter().map(|&n| bench.measure(n)).collect();
    print_tables(&rows);
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

struct Bench {
    dir: tempfile::TempDir,
    reference: Option<PathBuf>,
    real_tmux: PathBuf,
    tmux_log: PathBuf,
    plain_path: String,
    wrapped_path: String,
}

struct Row {
    n: usize,
    floor_ms: f64,
    status_ms: f64,
    ref_status_ms: f64,
    status_tmux: usize,
    tick_wall_ms: f64,
    tick_cpu_ms: f64,
    tick_tmux: f64,
    ref_tick_wall_ms: f64,
    ref_tick_cpu_ms: f64,
    wd_cpu_ms: f64,
    rss_mb: f64,
    /// The real watchdog over the idle window: tmux processes per tick (ticks counted by
    /// their one `list-panes`).
    wd_tmux_per_tick: f64,
}

impl Bench {
    fn new(reference: Option<PathBuf>) -> Result<Bench, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let real_tmux = which("tmux").ok_or("tmux vanished")?;
        let bin = dir.path().join("bin");
        let tmux_dir = dir.path().join("tmux");
        std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&tmux_dir).map_err(|e| e.to_string())?;
        let tmux_log = dir.path().join("tmux-calls.log");
        let wrapper = bin.join("tmux");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nexec {} \"$@\"\n",
                shell_words::quote(&tmux_log.display().to_string()),
                shell_words::quote(&real_tmux.display().to_string())
            ),
        )
        .map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let plain_path = std::env::var("PATH").unwrap_or_default();
        let wrapped_path = format!("{}:{plain_path}", bin.display());
        // SAFETY: set at the start of a single-threaded bench, before any thread exists.
        unsafe {
            std::env::set_var("TMUX_TMPDIR", &tmux_dir);
            std::env::remove_var("TMUX");
            std::env::remove_var("TMUX_PANE");
            std::env::remove_var("ORCH_TMUX_SOCKET");
        }
        Ok(Bench {
            dir,
            reference,
            real_tmux,
            tmux_log,
            plain_path,
            wrapped_path,
        })
    }

    fn tmux_calls(&self) -> usize {
        std::fs::read_to_string(&self.tmux_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn reset_tmux_log(&self) {
        let _ = std::fs::remove_file(&self.tmux_log);
    }

    /// Put the counting `tmux` wrapper first on this process's PATH, or take it off.
    fn count_tmux(&self, on: bool) {
        let path = if on {
            &self.wrapped_path
        } else {
            &self.plain_path
        };
        // SAFETY: the bench is single-threaded between ticks; no thread reads the environment.
        unsafe { std::env::set_var("PATH", path) };
    }

    /// A project with `n` watched agents, each with a session running `sleep 1000`.
    fn project(&self, n: usize) -> PathBuf {
        let root = self.dir.path().join(format!("p{n}"));
        std::fs::create_dir_all(&root).unwrap_or_default();
        let mut cfg = String::from(
            "[defaults]\nsession_prefix = \"b-\"\nlog_dir = \".orch\"\nbackend = \"sleeper\"\nwatch = \"heal\"\n\n\
             [watchdog]\nsignal_interval = 1\nheavy_interval = 1\n\n\
             [backend.sleeper]\nbin = \"sleep 1000\"\nprompt_delivery = \"exec\"\nprocess_name = \"sleep\"\n\
             limit_re = \"usage limit\"\n",
        );
        for i in 0..n {
            cfg += &format!("\n[[agent]]\nname = \"a{i:03}\"\nprompt = \"work\"\n");
        }
        let config = root.join("agents.toml");
        std::fs::write(&config, cfg).unwrap_or_default();
        // All sessions in one tmux call: new-session ... \; new-session ... on a fresh server.
        self.kill_server();
        let mut args: Vec<String> = Vec::new();
        for i in 0..n {
            if i > 0 {
                args.push(";".into());
            }
            args.extend(
                [
                    "new-session",
                    "-d",
                    "-s",
                    &format!("b-a{i:03}"),
                    "sleep 1000",
                ]
                .map(String::from),
            );
        }
        let created = (0..3).any(|_| {
            let ok = Command::new(&self.real_tmux)
                .args(&args)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                self.kill_server();
            }
            ok
        });
        assert!(created, "could not create {n} sessions");
        config
    }

    /// Kill the private server and wait (up to 5 s) until it is gone.
    fn kill_server(&self) {
        let _ = Command::new(&self.real_tmux)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && Command::new(&self.real_tmux)
                .arg("list-sessions")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    fn measure(&self, n: usize) -> Row {
        eprintln!("fleet bench: {n} sessions ...");
        let config = self.project(n);
        let orch = PathBuf::from(env!("CARGO_BIN_EXE_orch"));
        let status = || {
            let mut c = Command::new(&orch);
            c.arg("--config").arg(&config).args(["status", "--json"]);
            c
        };
        // Floor and status runs alternate, so a busy moment on the machine hits both.
        let (mut floors, mut statuses) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            floors.push(time_cmd(Command::new(&self.real_tmux).args([
                "list-panes",
                "-a",
                "-F",
                FLOOR_FORMAT,
            ])));
            statuses.push(time_cmd(&mut status()));
        }
        let floor_ms = median_of(floors);
        let status_ms = median_of(statuses);
        self.reset_tmux_log();
        time_cmd(status().env("PATH", &self.wrapped_path));
        let status_tmux = self.tmux_calls();
        let ref_status_ms = match &self.reference {
            Some(reference) => median(REF_RUNS, || {
                time_cmd(
                    Command::new("python3")
                        .arg(reference)
                        .args(["status", "--config"])
                        .arg(&config),
                )
            }),
            None => f64::NAN,
        };
        let (tick_wall_ms, tick_cpu_ms, tick_tmux) = self.lib_ticks(&config);
        let (ref_tick_wall_ms, ref_tick_cpu_ms) = self.ref_ticks(&config);
        let (wd_cpu_ms, rss_mb, wd_tmux_per_tick) = self.watchdog_process(&orch, &config);
        Row {
            n,
            floor_ms,
            status_ms,
            ref_status_ms,
            status_tmux,
            tick_wall_ms,
            tick_cpu_ms,
            tick_tmux,
            ref_tick_wall_ms,
            ref_tick_cpu_ms,
            wd_cpu_ms,
            rss_mb,
            wd_tmux_per_tick,
        }
    }

    /// Library-level light ticks (after one heavy first tick): wall, CPU (self + tmux children)
    /// and tmux processes, per tick.
    fn lib_ticks(&self, config: &Path) -> (f64, f64, f64) {
        let Ok(mut wd) = orch::watchdog::Watchdog::open(config) else {
            return (f64::NAN, f64::NAN, f64::NAN);
        };
        wd.tick();
        let cpu0 = cpu_ms();
        let t0 = Instant::now();
        for _ in 0..TICKS {
            wd.tick();
        }
        let wall = t0.elapsed().as_secs_f64() * 1000.0 / TICKS as f64;
        let cpu = (cpu_ms() - cpu0) / TICKS as f64;
        self.count_tmux(true);
        self.reset_tmux_log();
        for _ in 0..TICKS {
            wd.tick();
        }
        self.count_tmux(false);
        (wall, cpu, self.tmux_calls() as f64 / TICKS as f64)
    }

    /// The reference's light tick, its `watchdog_loop` body without the sleep: reload the
    /// config, then for each watched agent the liveness check, a capture and `limit_tick`
    /// (heal) or `stall_check_one` (heal+stall). CPU = its own + its children's (tmux).
    fn ref_ticks(&self, config: &Path) -> (f64, f64) {
        let Some(reference) = &self.reference else {
            return (f64::NAN, f64::NAN);
        };
        let script = r#"
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import agents
cfg_path, ticks = sys.argv[2], int(sys.argv[3])
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1000
def tick():
    cfg = agents.load_config(cfg_path)
    for a in agents.watched(cfg):
        if a["watch"] == "heal+stall":
            agents.stall_check_one(cfg, a)
        elif agents.session_alive(a["session"]):
            agents.limit_tick(cfg, a, agents.capture_pane(a["session"], 40))
tick()
c0, t0 = cpu(), time.perf_counter()
for _ in range(ticks):
    tick()
print(json.dumps({"wall_ms": (time.perf_counter() - t0) * 1000 / ticks, "cpu_ms": (cpu() - c0) / ticks}))
"#;
        let dir = reference.parent().unwrap_or(Path::new("."));
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(dir)
            .arg(config)
            .arg(REF_RUNS.to_string())
            .output();
        let v: serde_json::Value = out
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default();
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        (f("wall_ms"), f("cpu_ms"))
    }

    /// A real `orch watchdog` (signal_interval = heavy_interval = 1) over an idle window
    /// (`ORCH_BENCH_IDLE_SECS`, default 60): CPU per tick (self + reaped children, from
    /// /proc/<pid>/stat; the counting wrapper's `sh` included), its resident memory (VmRSS)
    /// at the end, and tmux processes per tick.
    fn watchdog_process(&self, orch: &Path, config: &Path) -> (f64, f64, f64) {
        let window: u64 = std::env::var("ORCH_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let Ok(mut child) = Command::new(orch)
            .arg("--config")
            .arg(config)
            .arg("watchdog")
            .env("PATH", &self.wrapped_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return (f64::NAN, f64::NAN, f64::NAN);
        };
        let pid = child.id();
        // The first (heavy, one capture per pane) tick and the runtime start; then count
        // TICKS light ticks.
        let n = std::fs::read_to_string(config).map_or(0, |t| t.matches("[[agent]]").count());
        // The first heavy tick captures every pane once (about 25 ms each): wait it out.
        std::thread::sleep(Duration::from_millis(2000 + 30 * n as u64));
        self.reset_tmux_log();
        let c0 = proc_cpu_ms(pid);
        std::thread::sleep(Duration::from_secs(window));
        let log = std::fs::read_to_string(&self.tmux_log).unwrap_or_default();
        let ticks = log.lines().filter(|l| *l == "list-panes").count().max(1);
        let cpu = (proc_cpu_ms(pid) - c0) / ticks as f64;
        let per_tick = log.lines().count() as f64 / ticks as f64;
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kb| kb / 1024.0);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        (cpu, rss, per_tick)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.kill_server();
    }
}

/// utime + stime + cutime + cstime of `pid`, in ms.
fn proc_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name: state is field 3, utime 14 .. cstime 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    if f.len() < 15 || hz <= 0.0 {
        return f64::NAN;
    }
    (f[11] + f[12] + f[13] + f[14]) * 1000.0 / hz
}

/// This process's CPU plus its reaped children's, in ms.
fn cpu_ms() -> f64 {
    let get = |who| {
        // SAFETY: getrusage writes into the zeroed struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    get(libc::RUSAGE_SELF) + get(libc::RUSAGE_CHILDREN)
}

fn time_cmd(cmd: &mut Command) -> f64 {
    let t0 = Instant::now();
    let ok = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return f64::NAN;
    }
    t0.elapsed().as_secs_f64() * 1000.0
}

fn median(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    median_of((0..runs).map(|_| f()).collect())
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn print_tables(rows: &[Row]) {
    println!("\norch status (medians; wall ms)");
    println!(
        "{:>5} {:>9} {:>10} {:>12} {:>9} {:>9} {:>11}",
        "N", "floor", "orch", "reference", "speedup", "x floor", "tmux calls"
    );
    for r in rows {
        println!(
            "{:>5} {:>9.1} {:>10.1} {:>12.1} {:>8.0}x {:>8.2}x {:>11}",
            r.n,
            r.floor_ms,
            r.status_ms,
            r.ref_status_ms,
            r.ref_status_ms / r.status_ms,
            r.status_ms / r.floor_ms,
            r.status_tmux
        );
    }
    println!("\nwatchdog light tick (per tick; ms; CPU includes tmux children)");
    println!(
        "{:>5} {:>9} {:>9} {:>10} {:>9} {:>9} {:>10} {:>10} {:>8} {:>10}",
        "N",
        "wall",
        "CPU",
        "tmux/tick",
        "ref wall",
        "ref CPU",
        "CPU ratio",
        "proc CPU",
        "RSS MB",
        "proc tmux"
    );
    for r in rows {
        println!(
            "{:>5} {:>9.2} {:>9.2} {:>10.1} {:>9.1} {:>9.1} {:>9.0}x {:>10.2} {:>8.1} {:>10.2}",
            r.n,
            r.tick_wall_ms,
            r.tick_cpu_ms,
            r.tick_tmux,
            r.ref_tick_wall_ms,
            r.ref_tick_cpu_ms,
            r.ref_tick_cpu_ms / r.tick_cpu_ms.max(0.01),
            r.wd_cpu_ms,
            r.rss_mb,
            r.wd_tmux_per_tick
        );
    }
    if let Some(r) = rows.iter().find(|r| r.n == 100) {
        println!("\ntargets at N = 100:");
        let speedup = r.ref_status_ms / r.status_ms;
        println!(
            "  status >= 50x faster than the reference: {speedup:.0}x {}",
            verdict(speedup >= 50.0)
        );
        let xf = r.status_ms / r.floor_ms;
        println!("  status <= 3x the floor: {xf:.2}x {}", verdict(xf <= 3.0));
        let per_tick = r.wd_tmux_per_tick;
        println!(
            "  idle watchdog <= 1.2 tmux calls per tick (heavy_interval = 1): {per_tick:.2} {}",
            verdict(per_tick <= 1.2)
        );
        let proc_ratio = r.ref_tick_cpu_ms / r.wd_cpu_ms.max(0.01);
        println!(
            "  idle watchdog process >= 50x less CPU per tick than the reference: {proc_ratio:.0}x {}",
            verdict(proc_ratio >= 50.0)
        );
        let ratio = r.ref_tick_cpu_ms / r.tick_cpu_ms.max(0.01);
        println!(
            "  light tick >= 20x less CPU than the reference: {ratio:.0}x {}",
            verdict(ratio >= 20.0)
        );
    }
    let rss = rows.iter().map(|r| r.rss_mb).fold(0.0, f64::max);
    println!(
        "  watchdog RSS <= 15 MB: {rss:.1} MB {}",
        verdict(rss <= 15.0)
    );
}
