//! The optional TCP listener (`[jobs] listen`): the socket's routes behind a token
//! (`Authorization: Bearer` or `X-API-Key`, read from a 0600 file, compared in constant time).
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use super::{MetricsState, Shared, dispatch, error};

/// Compare two byte strings in time that depends only on their lengths.
pub fn same_token(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// The token a request carries, if any.
pub fn presented<T>(req: &Request<T>) -> Option<String> {
    let h = req.headers();
    if let Some(v) = h
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_string())
}

/// Read the token file: it must be private (no group or other bits) and not empty.
pub fn read_token(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the API token file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the API token file {} must be private: chmod 600 it",
            path.display()
        ));
    }
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the API token file {}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(format!("the API token file {} is empty", path.display()));
    }
    Ok(t)
}

/// Bind `[jobs] listen` and serve it; a problem is logged and the listener is skipped.
pub fn spawn(
    shared: &Shared,
    rx: watch::Receiver<Shared>,
    started: Instant,
    metrics: Arc<MetricsState>,
) {
    let Some(addr) = shared.cfg.jobs.listen.as_deref() else {
        return;
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        tracing::warn!("no TCP API: [jobs].listen {addr:?} is not an address");
        return;
    };
    let token = match shared.cfg.jobs.token_file.as_deref().map(read_token) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::warn!("no TCP API on {addr}: {e}");
            return;
        }
        None => {
            tracing::warn!(
                "no TCP API on {addr}: [jobs].token_file is not set (a token is required)"
            );
            return;
        }
    };
    let std_listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("no TCP API: cannot bind {addr}: {e}");
            return;
        }
    };
    let _ = std_listener.set_nonblocking(true);
    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
        return;
    };
    tracing::info!("job API on http://{addr} (token required)");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let rx = rx.clone();
            let token = token.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let shared = rx.borrow().clone();
                    let metrics = metrics.clone();
                    let ok =
                        presented(&req).is_some_and(|t| same_token(t.as_bytes(), token.as_bytes()));
                    async move {
                        let resp: Response<Full<Bytes>> = if ok {
                            dispatch(req, shared, started, metrics, false).await
                        } else {
                            error(
                                StatusCode::UNAUTHORIZED,
                                "a valid API token is required (Authorization: Bearer TOKEN or X-API-Key: TOKEN)",
                            )
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = conn.await;
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_exact() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"abc", b"abcd"));
        assert!(!same_token(b"", b"a"));
    }

    #[test]
    fn a_token_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_token(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "s3cret");
    }

    #[test]
    fn bearer_and_api_key_headers_are_both_read() {
        let r = Request::builder()
            .header("Authorization", "Bearer t1")
            .body(())
            .unwrap();
        assert_eq!(presented(&r).as_deref(), Some("t1"));
        let r = Request::builder()
            .header("X-API-Key", "t2")
            .body(())
            .unwrap();
        assert_eq!(presented(&r).as_deref(), Some("t2"));
        let r = Request::builder().body(()).unwrap();
        assert_eq!(presented(&r), None);
    }
}
