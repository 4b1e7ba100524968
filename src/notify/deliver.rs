//! Delivering one message through one sink: an HTTP(S) POST with hyper (rustls for https) or a
//! command run without a shell; each attempt has a deadline, failures are retried a few times.
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::message::{self, Message};
use crate::config::{NotifySink, NotifyTarget};

/// Attempts per message (the first and two retries).
pub const ATTEMPTS: u32 = 3;

/// The pause before retry `n` (1-based): 1 s, then 2 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500 * 2u64.pow(n))
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub retry: bool,
}

fn fail(reason: impl Into<String>, retry: bool) -> Failure {
    Failure {
        reason: reason.into(),
        retry,
    }
}

/// Deliver `m` through `sink`, retrying retryable failures; the last failure's reason.
pub fn deliver(sink: &NotifySink, m: &Message) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match deliver_once(sink, m) {
            Ok(()) => return Ok(()),
            Err(f) if f.retry && attempt < ATTEMPTS => {
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
            Err(f) => {
                return Err(if attempt > 1 {
                    format!("{} (after {attempt} attempts)", f.reason)
                } else {
                    f.reason
                });
            }
        }
    }
}

fn deliver_once(sink: &NotifySink, m: &Message) -> Result<(), Failure> {
    match &sink.target {
        NotifyTarget::Webhook(url) => post(url, &message::body(sink.format, m), sink.timeout),
        NotifyTarget::Command(argv) => run_command(argv, m, sink.timeout),
    }
}

/// POST `body` to `url` within `timeout`. 2xx is success; 429 and 5xx are worth a retry.
/// Reasons never contain the URL.
pub fn post(url: &str, body: &message::Body, timeout: Duration) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start a runtime: {e}"), false))?;
    runtime.block_on(async {
        match tokio::time::timeout(timeout, post_async(url, body)).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                format!("no answer within {}s", timeout.as_secs_f64()),
                true,
            )),
        }
    })
}

async fn post_async(url: &str, body: &message::Body) -> Result<(), Failure> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| fail("the URL does not parse", false))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = hyper::Request::post(uri)
        .header("content-type", body.content_type)
        .header("user-agent", concat!("orch/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &body.headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body.bytes.clone())))
        .map_err(|e| fail(format!("cannot build the request: {e}"), false))?;
    let resp = client.request(req).await.map_err(|e| {
        // The error's chain names the cause (refused, DNS, TLS) but never the URL.
        let mut why = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            why = format!("{why}: {s}");
            src = s.source();
        }
        fail(strip_urls(&why), true)
    })?;
    let status = resp.status();
    // Drain the body so the connection closes cleanly; its content does not matter.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        let retry = status.as_u16() == 429 || status.is_server_error();
        Err(fail(format!("HTTP {status}"), retry))
    }
}

/// Remove anything that looks like a URL from an error text.
fn strip_urls(s: &str) -> String {
    s.split(' ')
        .map(|w| if w.contains("://") { "<url>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run the command sink's argv (no shell) with ORCH_EVENT, ORCH_AGENT, ORCH_SUMMARY and
/// ORCH_EVENT_JSON set, in the project folder; exit 0 is success; past `timeout` its process group is killed.
pub fn run_command(argv: &[String], m: &Message, timeout: Duration) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let argv = message::fill_argv(argv, m);
    let Some((prog, args)) = argv.split_first() else {
        return Err(fail("the command is empty", false));
    };
    let mut child = Command::new(prog)
        .args(args)
        .current_dir(&m.dir)
        .env("ORCH_EVENT", m.event())
        .env("ORCH_AGENT", m.agent())
        .env("ORCH_SUMMARY", m.summary())
        .env("ORCH_EVENT_JSON", m.json().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let retry = e.kind() != io::ErrorKind::NotFound;
            fail(format!("cannot run {prog}: {e}"), retry)
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("{prog} exited with {status}"), true)),
            Ok(None) if Instant::now() >= deadline => {
                // The child leads its own group: end it and anything it started.
                // SAFETY: kill has no memory preconditions; the pid is our own child.
                let pid = child.id() as libc::pid_t;
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    format!(
                        "{prog} did not finish within {}s and was killed",
                        timeout.as_secs_f64()
                    ),
                    true,
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("cannot wait for {prog}: {e}"), false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_lose_their_urls() {
        assert_eq!(
            strip_urls("error trying to connect: http://u:p@h/x?k=secret refused"),
            "error trying to connect: <url> refused"
        );
    }

    #[test]
    fn an_https_url_goes_through_rustls_and_a_refused_connection_is_retryable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let body = message::Body {
            content_type: "application/json",
            headers: Vec::new(),
            bytes: b"{}".to_vec(),
        };
        let url = format!("https://127.0.0.1:{port}/hook?token=SECRET");
        let f = post(&url, &body, Duration::from_secs(5)).unwrap_err();
        assert!(f.retry, "{f:?}");
        assert!(!f.reason.contains("SECRET"), "{f:?}");
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
    }
}
