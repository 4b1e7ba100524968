//! SLURM hosts in the tick: an ended job is replaced by a new allocation (bounded, backoff;
//! healing restarts the agents), a walltime warning asks the loop agents to push their work.
use std::time::{Duration, Instant};

use serde_json::json;

use super::Watchdog;
use crate::config::Kind;
use crate::events;
use crate::fleet::pings::PendingPing;
use crate::fleet::slurm as alloc;
use crate::transport::PlaceError;
use crate::transport::slurm::{JobRecord, JobState, SlurmSpec};

/// squeue's answer about a job: its state and whether its walltime warning came.
type Answer = Result<(JobState, bool), PlaceError>;
/// One host's spec, its recorded job and squeue's answer (none for a job known to be over).
type Look = (SlurmSpec, Option<JobRecord>, Option<Answer>);

/// At most this many new allocations per host within [`WINDOW`] (a job that keeps ending at
/// once is not resubmitted forever).
pub const MAX_ALLOCATIONS: usize = 6;
pub const WINDOW: Duration = Duration::from_secs(3600);
/// The first wait after a failed submission; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What the watchdog remembers of one SLURM host between ticks.
#[derive(Debug, Default)]
pub struct Realloc {
    /// When new allocations were made (within the window).
    made: Vec<Instant>,
    /// Failed submissions in a row, and when the next try may be.
    failures: u32,
    next_try: Option<Instant>,
    gave_up: bool,
}

impl Realloc {
    /// May a new allocation be requested now? Pure but for the clock passed in.
    pub fn allowed(&mut self, now: Instant) -> bool {
        self.made.retain(|t| now.duration_since(*t) < WINDOW);
        !self.gave_up && self.made.len() < MAX_ALLOCATIONS && self.next_try.is_none_or(|t| now >= t)
    }

    fn succeeded(&mut self, now: Instant) {
        self.made.push(now);
        self.failures = 0;
        self.next_try = None;
    }

    /// Records a failure; true when this one exhausts the retries.
    fn failed(&mut self, now: Instant) -> bool {
        self.failures += 1;
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(10))
            .min(MAX_BACKOFF);
        self.next_try = Some(now + wait);
        if self.failures as usize >= MAX_ALLOCATIONS {
            self.gave_up = true;
        }
        self.gave_up
    }
}

impl Watchdog {
    /// Looks at each SLURM host's job: one squeue call each (with a timeout), hosts in
    /// parallel, so a host that hangs costs the tick one timeout at most.
    pub(super) fn slurm_tick(&mut self) {
        let specs = alloc::specs(&self.cfg);
        if specs.is_empty() {
            return;
        }
        let timeout = alloc::call_timeout();
        let looks: Vec<Look> = std::thread::scope(|scope| {
            let jobs: Vec<_> = specs
                .into_iter()
                .map(|spec| {
                    scope.spawn(move || {
                        let record = spec.load();
                        let answer = record
                            .as_ref()
                            .filter(|r| !is_ended(&r.state))
                            .map(|r| spec.query(&r.job_id, timeout));
                        (spec, record, answer)
                    })
                })
                .collect();
            jobs.into_iter().filter_map(|j| j.join().ok()).collect()
        });
        for (spec, record, answer) in looks {
            // No record: `up` never allocated it (or `down` cancelled it): nothing to keep.
            if let Some(record) = record {
                self.slurm_host_tick(&spec, record, answer);
            }
        }
    }

    fn slurm_host_tick(&mut self, spec: &SlurmSpec, mut record: JobRecord, answer: Option<Answer>) {
        let state = match answer {
            None => JobState::Ended(record.state.clone()),
            Some(answer) => match answer {
                Ok((state, warned)) => {
                    if warned && !record.warned && state == JobState::Running {
                        self.walltime_warning(spec, &record.job_id);
                        record.warned = true;
                        let _ = spec.save(&record);
                    }
                    state
                }
                // Not answering: the hosts pass reports it; nothing is decided on no news.
                Err(e) => {
                    tracing::debug!("squeue for host {}: {e}", spec.name);
                    return;
                }
            },
        };
        let JobState::Ended(label) = &state else {
            alloc::note_state(spec, &mut record, &state);
            return;
        };
        if !is_ended(&record.state) {
            let agents = self.agents_on(&spec.name, false);
            tracing::warn!(host = %spec.name, job = %record.job_id, "allocation ended ({label})");
            self.event(
                events::SLURM_JOB_ENDED,
                json!({ "host": spec.name, "job_id": record.job_id, "state": label, "agents": agents }),
            );
            alloc::note_state(spec, &mut record, &state);
        }
        let now = Instant::now();
        let realloc = self.slurm.entry(spec.name.clone()).or_default();
        if !realloc.allowed(now) {
            return;
        }
        match alloc::allocate(&self.cfg, spec, Some(&record.job_id), "watchdog") {
            Ok(job) => {
                tracing::info!(host = %spec.name, "new allocation {job}");
                if let Some(r) = self.slurm.get_mut(&spec.name) {
                    r.succeeded(now);
                }
            }
            Err(error) => {
                let gave_up = self
                    .slurm
                    .get_mut(&spec.name)
                    .is_some_and(|r| r.failed(now));
                let attempt = self.slurm.get(&spec.name).map_or(0, |r| r.failures);
                tracing::warn!(host = %spec.name, "new allocation failed: {error}");
                self.event(
                    events::SLURM_ALLOCATION_FAILED,
                    json!({ "host": spec.name, "error": error, "attempt": attempt, "gave_up": gave_up }),
                );
            }
        }
    }

    /// The walltime warning came: every loop agent on the host is asked to push its work.
    fn walltime_warning(&mut self, spec: &SlurmSpec, job: &str) {
        let agents = self.agents_on(&spec.name, true);
        for agent in &agents {
            let text = format!(
                "[orch] The SLURM allocation {job} of host {} reaches its time limit in about {} minutes: commit and push your work now. You will be restarted in a new allocation.",
                spec.name,
                crate::transport::slurm::WARN_SECS / 60
            );
            let id = format!("walltime-{job}-{agent}");
            self.queue_ping(
                agent,
                PendingPing::new(id, "walltime", text, json!({ "job_id": job })),
            );
        }
        tracing::warn!(host = %spec.name, job, "walltime warning");
        self.event(
            events::SLURM_WALLTIME_WARNING,
            json!({ "host": spec.name, "job_id": job, "agents": agents }),
        );
    }

    fn agents_on(&self, host: &str, loops_only: bool) -> Vec<String> {
        self.cfg
            .agents
            .iter()
            .filter(|a| a.host.as_deref() == Some(host))
            .filter(|a| !loops_only || a.kind == Kind::Loop)
            .map(|a| a.name.clone())
            .collect()
    }
}

/// A recorded state of a job that is over (any but running or queued).
fn is_ended(state: &str) -> bool {
    state != "RUNNING" && !crate::transport::slurm::is_pending(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reallocation_backs_off_after_failures_and_stops_at_the_bound() {
        let mut r = Realloc::default();
        let t0 = Instant::now();
        assert!(r.allowed(t0));
        assert!(!r.failed(t0));
        assert!(!r.allowed(t0), "backing off");
        assert!(r.allowed(t0 + Duration::from_secs(11)));
        for _ in 1..MAX_ALLOCATIONS {
            r.failed(t0);
        }
        assert!(r.gave_up);
        assert!(!r.allowed(t0 + Duration::from_secs(100_000)));
        let mut r = Realloc::default();
        for i in 0..MAX_ALLOCATIONS {
            assert!(r.allowed(t0), "allocation {i}");
            r.succeeded(t0);
        }
        assert!(!r.allowed(t0), "too many allocations within the window");
        assert!(r.allowed(t0 + WINDOW + Duration::from_secs(1)));
    }

    #[test]
    fn the_walltime_warning_asks_each_loop_agent_on_the_host_to_push() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.toml");
        std::fs::create_dir(dir.path().join("prompts")).unwrap();
        for role in ["adversary", "builder"] {
            std::fs::write(dir.path().join(format!("prompts/{role}.md")), "role").unwrap();
        }
        std::fs::write(
            &path,
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.sh]\nbin = \"sh\"\n\
             [host.gpu]\ntransport = \"slurm\"\n\
             [[agent]]\nname = \"adv\"\nkind = \"loop\"\nrole = \"adversary\"\nbackend = \"sh\"\nhost = \"gpu\"\ndir = \"/x\"\n\
             [[agent]]\nname = \"helper\"\nbackend = \"sh\"\nhost = \"gpu\"\ndir = \"/y\"\n\
             [[agent]]\nname = \"here\"\nkind = \"loop\"\nrole = \"builder\"\nbackend = \"sh\"\ndir = \".\"\n\
             [loop]\nphases = [{ id = \"p1\", plan = \"p1.md\", status = \"p1-STATUS.md\" }]\n\
             [loop.handoff]\nrepo = \".\"\n",
        )
        .unwrap();
        let mut wd = Watchdog::open(&path).unwrap();
        let spec = alloc::spec(&wd.cfg, &wd.cfg.hosts["gpu"]).unwrap();
        wd.walltime_warning(&spec, "42");
        let queued = crate::fleet::pings::load(&wd.cfg, "adv").pings;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].reason, "walltime");
        assert!(
            queued[0].text.contains("push your work"),
            "{}",
            queued[0].text
        );
        assert!(
            crate::fleet::pings::load(&wd.cfg, "helper")
                .pings
                .is_empty()
        );
        assert!(crate::fleet::pings::load(&wd.cfg, "here").pings.is_empty());
        let events = std::fs::read_to_string(wd.events.path()).unwrap();
        assert!(
            events.contains("slurm_walltime_warning") && events.contains("\"agents\":[\"adv\"]"),
            "{events}"
        );
    }
}
