//! The API's job routes: `GET/POST /v1/jobs`, `GET /v1/jobs/{id}[?wait=S]`,
//! `GET /v1/jobs/{id}/log?since=BYTE`, `POST /v1/jobs/{id}/cancel|retry`, `GET /v1/profiles`.
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::{error, reply};
use crate::config::Config;
use crate::job::{NewJob, Store, ops};

/// The most a request body may hold (a task is text).
const MAX_BODY: usize = 1 << 20;
/// The most one log request returns; the client asks again from `x-orch-next-byte`.
pub const LOG_CHUNK: u64 = 1 << 20;
/// The longest `?wait=` honoured.
const MAX_WAIT_SECS: f64 = 600.0;

#[derive(Debug, Clone, PartialEq)]
pub enum JobRoute {
    List,
    Create,
    Get {
        id: String,
        wait: Option<f64>,
    },
    Log {
        id: String,
        since: u64,
    },
    Cancel(String),
    Retry(String),
    Profiles,
    /// The path is a job route but not for this method; `allow` lists the methods it takes.
    MethodNotAllowed(&'static str),
    BadRequest(String),
}

fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Route a job request (pure); `None` when the path is not a job route.
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Option<JobRoute> {
    let path = path.trim_end_matches('/');
    let get = method == Method::GET;
    let post = method == Method::POST;
    let r = match path {
        "/v1/profiles" if get => JobRoute::Profiles,
        "/v1/profiles" => JobRoute::MethodNotAllowed("GET"),
        "/v1/jobs" if get => JobRoute::List,
        "/v1/jobs" if post => JobRoute::Create,
        "/v1/jobs" => JobRoute::MethodNotAllowed("GET, POST"),
        p => {
            let rest = p.strip_prefix("/v1/jobs/")?;
            let mut parts = rest.split('/');
            let id = parts.next().filter(|s| !s.is_empty())?.to_string();
            let verb = parts.next();
            if parts.next().is_some() {
                return None;
            }
            match (verb, get, post) {
                (None, true, _) => match query_value(query, "wait").map(str::parse::<f64>) {
                    None => JobRoute::Get { id, wait: None },
                    Some(Ok(w)) if w >= 0.0 && w.is_finite() => JobRoute::Get {
                        id,
                        wait: Some(w.min(MAX_WAIT_SECS)),
                    },
                    Some(_) => JobRoute::BadRequest("wait must be a number of seconds".into()),
                },
                (None, ..) => JobRoute::MethodNotAllowed("GET"),
                (Some("log"), true, _) => {
                    match query_value(query, "since").map(str::parse::<u64>) {
                        None => JobRoute::Log { id, since: 0 },
                        Some(Ok(n)) => JobRoute::Log { id, since: n },
                        Some(Err(_)) => {
                            JobRoute::BadRequest("since must be a byte offset (0, 1, ...)".into())
                        }
                    }
                }
                (Some("log"), ..) => JobRoute::MethodNotAllowed("GET"),
                (Some("cancel"), _, true) => JobRoute::Cancel(id),
                (Some("retry"), _, true) => JobRoute::Retry(id),
                (Some("cancel" | "retry"), ..) => JobRoute::MethodNotAllowed("POST"),
                _ => return None,
            }
        }
    };
    Some(r)
}

fn from_error(e: crate::Error) -> Response<Full<Bytes>> {
    let code = match &e {
        crate::Error::Usage(m) if m.starts_with("no job") => StatusCode::NOT_FOUND,
        crate::Error::Usage(_) | crate::Error::Config(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, &e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::Runtime(format!("the job task failed: {e}")))?
}

/// Serve a job route.
pub async fn handle(r: JobRoute, req: Request<Incoming>, cfg: Config) -> Response<Full<Bytes>> {
    match r {
        JobRoute::MethodNotAllowed(allow) => {
            let mut resp = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("this route takes {allow} only"),
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            resp
        }
        JobRoute::BadRequest(why) => error(StatusCode::BAD_REQUEST, &why),
        JobRoute::Profiles => {
            let rows: Vec<_> = cfg
                .profiles
                .values()
                .map(|p| {
                    json!({"name": p.name, "backend": p.backend, "model": p.model,
                           "max_turns": p.max_turns, "auto_pr": p.auto_pr,
                           "default": p.name == cfg.jobs.default_profile})
                })
                .collect();
            reply(StatusCode::OK, &json!({ "profiles": rows }))
        }
        JobRoute::List => match blocking(move || Store::new(&cfg.log_dir).list()).await {
            Ok(jobs) => reply(StatusCode::OK, &json!({ "jobs": jobs })),
            Err(e) => from_error(e),
        },
        JobRoute::Create => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB"),
            };
            let new: NewJob = match serde_json::from_slice(&body) {
                Ok(n) => n,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("the body must be a JSON object with at least \"task\": {e}"),
                    );
                }
            };
            match blocking(move || ops::add(&cfg, new)).await {
                Ok(job) => reply(StatusCode::CREATED, &json!(job)),
                Err(e) => from_error(e),
            }
        }
        JobRoute::Get { id, wait } => {
            let timeout = wait.map(std::time::Duration::from_secs_f64);
            let ids = vec![id];
            match blocking(move || ops::wait(&cfg, &ids, timeout.or(Some(Default::default()))))
                .await
            {
                Ok((jobs, _)) => reply(StatusCode::OK, &json!(jobs[0])),
                Err(e) => from_error(e),
            }
        }
        JobRoute::Cancel(id) => match blocking(move || ops::cancel(&cfg, &id)).await {
            Ok(job) => reply(StatusCode::OK, &json!(job)),
            Err(e) => from_error(e),
        },
        JobRoute::Retry(id) => match blocking(move || ops::retry(&cfg, &id)).await {
            Ok(job) => reply(StatusCode::OK, &json!(job)),
            Err(e) => from_error(e),
        },
        JobRoute::Log { id, since } => match blocking(move || read_log(&cfg, &id, since)).await {
            Ok((bytes, next, status)) => {
                let mut resp = Response::new(Full::new(Bytes::from(bytes)));
                let h = resp.headers_mut();
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                if let Ok(v) = HeaderValue::from_str(&next.to_string()) {
                    h.insert("x-orch-next-byte", v);
                }
                if let Ok(v) = HeaderValue::from_str(status) {
                    h.insert("x-orch-job-status", v);
                }
                resp
            }
            Err(e) => from_error(e),
        },
    }
}

/// At most `LOG_CHUNK` bytes of a job's output from `since`, the next offset, the job's status.
pub fn read_log(cfg: &Config, id: &str, since: u64) -> crate::Result<(Vec<u8>, u64, &'static str)> {
    use std::io::{Read, Seek, SeekFrom};
    let store = Store::new(&cfg.log_dir);
    let job = store.load(id)?;
    let path = store.file(id, crate::job::store::OUTPUT_FILE);
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(&path) {
        f.seek(SeekFrom::Start(since))
            .map_err(|e| crate::Error::io(&path, "reading a job's log", e))?;
        f.take(LOG_CHUNK)
            .read_to_end(&mut buf)
            .map_err(|e| crate::Error::io(&path, "reading a job's log", e))?;
    }
    let next = since + buf.len() as u64;
    Ok((buf, next, job.status.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_routes_take_post_only_where_the_contract_says() {
        let (get, post, del) = (Method::GET, Method::POST, Method::DELETE);
        assert_eq!(route(&get, "/v1/jobs", None), Some(JobRoute::List));
        assert_eq!(route(&post, "/v1/jobs/", None), Some(JobRoute::Create));
        assert_eq!(
            route(&get, "/v1/jobs/3", Some("wait=5")),
            Some(JobRoute::Get {
                id: "3".into(),
                wait: Some(5.0)
            })
        );
        assert_eq!(
            route(&get, "/v1/jobs/3/log", Some("since=100")),
            Some(JobRoute::Log {
                id: "3".into(),
                since: 100
            })
        );
        assert_eq!(
            route(&post, "/v1/jobs/3/cancel", None),
            Some(JobRoute::Cancel("3".into()))
        );
        assert_eq!(
            route(&post, "/v1/jobs/3/retry", None),
            Some(JobRoute::Retry("3".into()))
        );
        assert_eq!(route(&get, "/v1/profiles", None), Some(JobRoute::Profiles));
        assert_eq!(
            route(&get, "/v1/jobs/3/cancel", None),
            Some(JobRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&post, "/v1/jobs/3", None),
            Some(JobRoute::MethodNotAllowed("GET"))
        );
        assert_eq!(
            route(&del, "/v1/jobs", None),
            Some(JobRoute::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(
            route(&post, "/v1/profiles", None),
            Some(JobRoute::MethodNotAllowed("GET"))
        );
        assert!(matches!(
            route(&get, "/v1/jobs/3", Some("wait=x")),
            Some(JobRoute::BadRequest(_))
        ));
        assert_eq!(route(&get, "/v1/jobs/3/other", None), None);
        assert_eq!(route(&get, "/v1/agents", None), None);
        // POST elsewhere stays refused by the read-only routes.
        assert_eq!(route(&post, "/v1/health", None), None);
    }
}
