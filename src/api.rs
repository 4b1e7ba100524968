//! The watchdog's read-only HTTP API on the Unix socket `<log_dir>/orch.sock` (mode 0600):
//! `/v1/health`, `/v1/agents`, `/v1/agents/{name}`, `/v1/events?since=N`, `/metrics`
//! (Prometheus), and `/metrics` alone on the optional `[api].metrics_listen` TCP address;
//! anything but GET is 405 except on the job routes (`jobs.rs`); `[jobs] listen` adds a
//! token-guarded TCP listener (`tcp.rs`).
mod jobs;
mod tcp;
use std::convert::Infallible;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{SecondsFormat, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::{self, Histogram, LogCounters};
use crate::{fleet, status};

/// The socket's file name inside the log dir.
pub const SOCKET_FILE: &str = "orch.sock";

/// What the handlers read: the watchdog's current config and whether its last reload failed.
#[derive(Debug, Clone)]
pub struct Shared {
    pub cfg: Config,
    pub config_error: Option<String>,
}

/// A parsed request line: which route, or why none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Agents,
    Agent(String),
    Events(usize),
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest(String),
}

/// Route a request (pure): only GET is served; unknown paths are 404.
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Route {
    if method != Method::GET {
        return Route::MethodNotAllowed;
    }
    let path = path.trim_end_matches('/');
    match path {
        "/v1/health" => Route::Health,
        "/v1/agents" => Route::Agents,
        "/metrics" => Route::Metrics,
        "/v1/events" => {
            let since = query
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("since="));
            match since.map(str::parse::<usize>) {
                None => Route::Events(0),
                Some(Ok(n)) => Route::Events(n),
                Some(Err(_)) => Route::BadRequest("since must be a line number (0, 1, ...)".into()),
            }
        }
        p => match p.strip_prefix("/v1/agents/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Route::Agent(name.into()),
            _ => Route::NotFound,
        },
    }
}

/// The API server of a running watchdog: update it after each tick; dropping it removes the socket.
pub struct ApiHandle {
    tx: watch::Sender<Shared>,
    path: PathBuf,
    metrics: Arc<MetricsState>,
}

/// What `/metrics` keeps between scrapes: the tick histogram the watchdog loop fills, and the
/// event-log counters with the log size and time they were read at (recounted on change).
#[derive(Debug)]
pub struct MetricsState {
    pub ticks: Histogram,
    cache: Mutex<Option<(u64, Option<SystemTime>, LogCounters)>>,
}

impl MetricsState {
    pub fn new() -> MetricsState {
        MetricsState {
            ticks: Histogram::new(metrics::TICK_BUCKETS),
            cache: Mutex::new(None),
        }
    }

    /// The event log's counters, recounted only when the file changed since the last scrape.
    fn counters(&self, path: &Path) -> LogCounters {
        let meta = std::fs::metadata(path).ok();
        let key = (
            meta.as_ref().map_or(0, |m| m.len()),
            meta.and_then(|m| m.modified().ok()),
        );
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((len, modified, c)) = cache.as_ref()
            && (*len, *modified) == key
        {
            return c.clone();
        }
        let log = crate::report::read_log(path).unwrap_or_default();
        let counted = metrics::log_counters(&log, Utc::now().timestamp_millis());
        *cache = Some((key.0, key.1, counted.clone()));
        counted
    }
}

impl Default for MetricsState {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiHandle {
    /// Bind `<log_dir>/orch.sock` and serve it on the current tokio runtime. A socket that
    /// cannot be bound is reported and the watchdog goes on without its API.
    pub fn spawn(cfg: &Config) -> Option<ApiHandle> {
        let path = cfg.log_dir.join(SOCKET_FILE);
        let listener = match bind(&path).and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)
        }) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("no status API: cannot bind {}: {e}", path.display());
                return None;
            }
        };
        let (tx, rx) = watch::channel(Shared {
            cfg: cfg.clone(),
            config_error: None,
        });
        let metrics = Arc::new(MetricsState::new());
        let started = Instant::now();
        if let Some(addr) = cfg.api.metrics_listen {
            match std::net::TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            }) {
                Ok(tcp) => {
                    tracing::info!("metrics on http://{addr}/metrics");
                    let (rx, m) = (rx.clone(), metrics.clone());
                    tokio::spawn(async move {
                        loop {
                            match tcp.accept().await {
                                Ok((s, _)) => serve_conn(s, rx.clone(), started, m.clone(), true),
                                Err(e) => accept_failed(e).await,
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!("no metrics listener: cannot bind {addr}: {e}"),
            }
        }
        tcp::spawn(&rx.borrow().clone(), rx.clone(), started, metrics.clone());
        tokio::spawn(serve(listener, rx, started, metrics.clone()));
        tracing::info!("status API on {}", path.display());
        Some(ApiHandle { tx, path, metrics })
    }

    /// Record how long one watchdog tick took (`orch_tick_duration_seconds`).
    pub fn observe_tick(&self, took: Duration) {
        self.metrics.ticks.observe(took.as_secs_f64());
    }

    /// Publish the config the last tick used.
    pub fn update(&self, cfg: &Config, config_error: Option<&str>) {
        self.tx.send_replace(Shared {
            cfg: cfg.clone(),
            config_error: config_error.map(String::from),
        });
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind a Unix socket at `path`, mode 0600 before anyone can connect: bound under a temporary
/// name, chmod-ed, then renamed over `path` (a stale socket left by a dead watchdog is replaced;
/// the watchdog lock guarantees no live one owns it).
pub fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".orch.sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

async fn serve(
    listener: tokio::net::UnixListener,
    rx: watch::Receiver<Shared>,
    started: Instant,
    metrics: Arc<MetricsState>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => serve_conn(stream, rx.clone(), started, metrics.clone(), false),
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_failed(e: io::Error) {
    tracing::debug!("status API accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serve one connection; `metrics_only` (the TCP listener) answers `/metrics` and nothing else.
fn serve_conn<S>(
    stream: S,
    rx: watch::Receiver<Shared>,
    started: Instant,
    metrics: Arc<MetricsState>,
    metrics_only: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req: Request<Incoming>| {
            let shared = rx.borrow().clone();
            let metrics = metrics.clone();
            async move {
                Ok::<_, Infallible>(dispatch(req, shared, started, metrics, metrics_only).await)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(5))
            .serve_connection(TokioIo::new(stream), svc);
        if let Err(e) = conn.await {
            tracing::debug!("status API connection ended: {e}");
        }
    });
}

fn reply(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    reply(code, &json!({ "error": text }))
}

/// The job routes (which take POST; not on the metrics-only listener), then the read-only ones.
async fn dispatch(
    req: Request<Incoming>,
    shared: Shared,
    started: Instant,
    metrics: Arc<MetricsState>,
    metrics_only: bool,
) -> Response<Full<Bytes>> {
    if !metrics_only && let Some(r) = jobs::route(req.method(), req.uri().path(), req.uri().query())
    {
        return jobs::handle(r, req, shared.cfg).await;
    }
    handle(&req, shared, started, metrics, metrics_only).await
}

async fn handle(
    req: &Request<Incoming>,
    shared: Shared,
    started: Instant,
    metrics: Arc<MetricsState>,
    metrics_only: bool,
) -> Response<Full<Bytes>> {
    let route = match route(req.method(), req.uri().path(), req.uri().query()) {
        r @ (Route::Metrics | Route::MethodNotAllowed) => r,
        _ if metrics_only => {
            return error(StatusCode::NOT_FOUND, "this listener serves /metrics only");
        }
        r => r,
    };
    match route {
        Route::Metrics => {
            let text = tokio::task::spawn_blocking(move || metrics_text(&shared, &metrics))
                .await
                .unwrap_or_default();
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        Route::Health => reply(StatusCode::OK, &health(&shared, started)),
        Route::Agents => match report(shared.cfg).await {
            Ok(r) => reply(
                StatusCode::OK,
                &json!({ "schema_version": r.schema_version, "agents": r.agents }),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        Route::Agent(name) => match report(shared.cfg).await {
            Ok(r) => match r.agents.iter().find(|a| a.name == name) {
                Some(a) => reply(StatusCode::OK, &json!(a)),
                None => error(StatusCode::NOT_FOUND, &format!("no agent named {name:?}")),
            },
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        Route::Events(since) => {
            let path = shared.cfg.events_file();
            let events =
                tokio::task::spawn_blocking(move || crate::events::read_since(&path, since))
                    .await
                    .unwrap_or_default();
            let next = events.last().map_or(since, |(n, _)| n + 1);
            let events: Vec<Value> = events
                .into_iter()
                .map(|(n, mut v)| {
                    if let Value::Object(m) = &mut v {
                        m.insert("line".into(), json!(n));
                    }
                    v
                })
                .collect();
            reply(
                StatusCode::OK,
                &json!({ "since": since, "next": next, "events": events }),
            )
        }
        Route::NotFound => error(StatusCode::NOT_FOUND, "no such route; see /v1/health"),
        Route::BadRequest(why) => error(StatusCode::BAD_REQUEST, &why),
        Route::MethodNotAllowed => {
            let mut resp = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "the status API is read-only: GET only (POST only on the job routes)",
            );
            resp.headers_mut()
                .insert(ALLOW, hyper::header::HeaderValue::from_static("GET"));
            resp
        }
    }
}

fn health(shared: &Shared, started: Instant) -> Value {
    let state = if shared.config_error.is_some() {
        "config_error"
    } else {
        "running"
    };
    json!({
        "state": state,
        "pid": std::process::id(),
        "uptime_secs": started.elapsed().as_secs(),
        "now": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "config_error": shared.config_error,
        "phase": status::phase_report(&shared.cfg),
    })
}

/// The Prometheus text: the fleet from one tmux call (left out when tmux cannot be read), the
/// event-log counters and the tick histogram.
fn metrics_text(shared: &Shared, m: &MetricsState) -> String {
    let snapshot = fleet::tmux_for(&shared.cfg).fleet();
    if let Err(e) = &snapshot {
        tracing::debug!("metrics without the fleet: {e}");
    }
    let report = snapshot.ok().map(|f| status::gather(&shared.cfg, &f));
    let phase = status::phase_report(&shared.cfg);
    let counters = m.counters(&shared.cfg.events_file());
    metrics::render(&metrics::Inputs {
        status: report.as_ref(),
        phase: phase.as_ref(),
        log: &counters,
        ticks: Some(m.ticks.snapshot()),
        watchdog_up: true,
        now_ms: Utc::now().timestamp_millis(),
    })
}

/// The status report, from one tmux call made off the runtime thread.
async fn report(cfg: Config) -> Result<status::Report, String> {
    tokio::task::spawn_blocking(move || {
        let snapshot = fleet::snapshot(&cfg).map_err(|e| e.to_string())?;
        Ok(status::gather(&cfg, &snapshot))
    })
    .await
    .map_err(|e| format!("the status task failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_get_only_and_exact() {
        let get = Method::GET;
        assert_eq!(route(&get, "/v1/health", None), Route::Health);
        assert_eq!(route(&get, "/v1/agents/", None), Route::Agents);
        assert_eq!(
            route(&get, "/v1/agents/builder", None),
            Route::Agent("builder".into())
        );
        assert_eq!(route(&get, "/v1/agents/a/b", None), Route::NotFound);
        assert_eq!(
            route(&get, "/v1/events", Some("since=12")),
            Route::Events(12)
        );
        assert_eq!(route(&get, "/v1/events", None), Route::Events(0));
        assert!(matches!(
            route(&get, "/v1/events", Some("since=x")),
            Route::BadRequest(_)
        ));
        assert_eq!(route(&get, "/v2/health", None), Route::NotFound);
        assert_eq!(route(&get, "/metrics", None), Route::Metrics);
        for m in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
        ] {
            assert_eq!(route(&m, "/v1/health", None), Route::MethodNotAllowed);
        }
    }

    #[test]
    fn a_stale_socket_file_is_replaced_and_the_socket_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        std::fs::write(&path, "stale").unwrap();
        let _l = bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_socket());
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    }
}
