//! Unit tests of the job transitions (cancel never overwritten, retry, PR outcome) and of the
//! scheduling plan (max_parallel, --after); pure data, no files.
use super::*;

const T: &str = "2026-01-01T00:00:00Z";

fn job(id: &str, status: Status) -> Job {
    Job {
        schema_version: SCHEMA_VERSION,
        id: id.into(),
        task: "t".into(),
        status,
        ..Job::default()
    }
}

fn failed() -> Outcome {
    Outcome {
        success: false,
        reason: Some(Reason::AgentError),
        exit_code: Some(1),
        ..Outcome::default()
    }
}

#[test]
fn a_queued_job_starts_then_finishes() {
    let j = apply(&job("1", Status::Queued), Event::Start { session: None }, T).unwrap();
    assert_eq!(j.status, Status::Running);
    assert_eq!(j.times.started.as_deref(), Some(T));
    let ok = Outcome {
        success: true,
        exit_code: Some(0),
        ..Outcome::default()
    };
    let j = apply(&j, Event::Finish(ok), T).unwrap();
    assert_eq!((j.status, j.reason), (Status::Succeeded, Some(Reason::Ok)));
    assert!(j.stage.is_none() && j.times.finished.is_some());
}

#[test]
fn cancel_is_never_overwritten_by_a_late_failure() {
    let running = apply(&job("1", Status::Queued), Event::Start { session: None }, T).unwrap();
    let cancelled = apply(&running, Event::Cancelled, T).unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(apply(&cancelled, Event::Finish(failed()), T).is_err());
    assert!(apply(&cancelled, Event::TimedOut, T).is_err());
    assert!(apply(&cancelled, Event::Interrupted, T).is_err());
    assert!(apply(&cancelled, Event::Cancelled, T).is_err());
}

#[test]
fn only_a_running_job_is_interrupted_or_timed_out() {
    assert!(apply(&job("1", Status::Queued), Event::Interrupted, T).is_err());
    let j = apply(&job("1", Status::Running), Event::Interrupted, T).unwrap();
    assert_eq!(
        (j.status, j.reason),
        (Status::Failed, Some(Reason::Interrupted))
    );
    let j = apply(&job("1", Status::Running), Event::TimedOut, T).unwrap();
    assert_eq!(j.reason, Some(Reason::Timeout));
}

#[test]
fn retry_requeues_a_finished_job_as_a_new_attempt() {
    let mut f = job("4", Status::Failed);
    f.reason = Some(Reason::Timeout);
    f.exit_code = Some(1);
    f.after = vec!["2".into()];
    let r = apply(&f, Event::Retry, T).unwrap();
    assert_eq!((r.status, r.attempt, r.reason), (Status::Queued, 1, None));
    assert_eq!(r.after, vec!["2".to_string()]);
    assert!(r.exit_code.is_none());
    assert!(apply(&job("4", Status::Running), Event::Retry, T).is_err());
}

#[test]
fn a_pr_outcome_is_recorded_on_a_succeeded_job_but_not_a_failed_one() {
    let pr = Pr {
        state: PrState::PrFailed,
        url: None,
        error: Some("gh: 500".into()),
    };
    assert!(apply(&job("1", Status::Succeeded), Event::Pr(pr.clone()), T).is_ok());
    assert!(apply(&job("1", Status::Failed), Event::Pr(pr), T).is_err());
}

#[test]
fn plan_never_runs_more_than_max_parallel() {
    let mut jobs: Vec<Job> = (1..=5)
        .map(|i| job(&i.to_string(), Status::Queued))
        .collect();
    assert_eq!(
        plan(&jobs, 2),
        vec![Decision::Start("1".into()), Decision::Start("2".into())]
    );
    jobs[0].status = Status::Running;
    jobs[1].status = Status::Running;
    assert!(plan(&jobs, 2).is_empty());
    jobs[0].status = Status::Succeeded;
    assert_eq!(plan(&jobs, 2), vec![Decision::Start("3".into())]);
}

#[test]
fn plan_waits_for_dependencies_and_fails_jobs_after_a_failed_one() {
    let mut a = job("1", Status::Running);
    let mut b = job("2", Status::Queued);
    b.after = vec!["1".into()];
    let mut c = job("3", Status::Queued);
    c.after = vec!["9".into()];
    assert_eq!(
        plan(&[a.clone(), b.clone(), c.clone()], 3),
        vec![Decision::DependencyFailed {
            id: "3".into(),
            dep: "9".into()
        }]
    );
    a.status = Status::Failed;
    assert_eq!(
        plan(&[a.clone(), b.clone()], 3),
        vec![Decision::DependencyFailed {
            id: "2".into(),
            dep: "1".into()
        }]
    );
    a.status = Status::Succeeded;
    assert_eq!(plan(&[a, b], 3), vec![Decision::Start("2".into())]);
    c.after.clear();
}

#[test]
fn ids_sort_as_numbers() {
    let mut ids = vec!["10", "9", "2"];
    ids.sort_by_key(|i| id_key(i));
    assert_eq!(ids, vec!["2", "9", "10"]);
}

#[test]
fn an_old_job_json_without_newer_fields_still_loads() {
    let j: Job = serde_json::from_str(r#"{"id":"3","task":"x","status":"running"}"#).unwrap();
    assert_eq!((j.id.as_str(), j.status), ("3", Status::Running));
    assert_eq!(j.pr.state, PrState::None);
}
