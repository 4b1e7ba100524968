//! The job routes through a running watchdog: POST over the Unix socket, and over the TCP
//! listener with a token (401 without one).
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use super::fixture::{JobProject, text};
use crate::support::wait_for;

/// One HTTP/1.1 request over `stream`; the status code and the body.
fn http<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: orch\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn jobs_are_posted_via_the_socket_and_via_tcp_with_a_token() {
    let port = free_port();
    let p = JobProject::new(
        3,
        &format!("listen = \"127.0.0.1:{port}\"\ntoken_file = \"api-token\""),
    );
    let token_file = p.project().join("api-token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.start_watchdog();
    let sock = p.log_dir().join("orch.sock");
    assert!(wait_for(Duration::from_secs(10), || sock.exists()));
    let unix = || std::os::unix::net::UnixStream::connect(&sock).unwrap();

    let body = serde_json::json!({"task": "Posted over the socket", "repo": p.url()}).to_string();
    let (code, resp) = http(
        unix(),
        "POST",
        "/v1/jobs",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(code, 201, "{resp}");
    let job: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(job["id"], "1");
    assert_eq!(job["status"], "queued");
    let (code, resp) = http(unix(), "GET", "/v1/jobs/1?wait=60", &[], "");
    assert_eq!(code, 200);
    let job: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(job["status"], "succeeded", "{resp}");
    // The log from a byte offset, with the next offset in a header.
    let (code, resp) = http(unix(), "GET", "/v1/jobs/1/log?since=0", &[], "");
    assert_eq!(code, 200);
    assert!(resp.contains("\"type\":\"result\""));
    // POST elsewhere stays refused; a bad body is a 400.
    assert_eq!(http(unix(), "POST", "/v1/health", &[], "").0, 405);
    assert_eq!(http(unix(), "POST", "/v1/jobs", &[], "{}").0, 400);
    assert_eq!(http(unix(), "GET", "/v1/jobs/77", &[], "").0, 404);

    // TCP: 401 without a token or with a wrong one, one JSON sentence.
    let tcp = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let (code, resp) = http(tcp(), "GET", "/v1/jobs", &[], "");
    assert_eq!(code, 401);
    let err: Value = serde_json::from_str(&resp).unwrap();
    assert!(err["error"].as_str().unwrap().contains("token"));
    assert_eq!(
        http(
            tcp(),
            "GET",
            "/v1/jobs",
            &[("Authorization", "Bearer nope")],
            ""
        )
        .0,
        401
    );
    let body =
        serde_json::json!({"task": "Posted over TCP", "repo": p.url(), "no_pr": true}).to_string();
    let (code, resp) = http(
        tcp(),
        "POST",
        "/v1/jobs",
        &[("Authorization", "Bearer s3cret-token")],
        &body,
    );
    assert_eq!(code, 201, "{resp}");
    let (code, resp) = http(
        tcp(),
        "GET",
        "/v1/jobs/2?wait=60",
        &[("X-API-Key", "s3cret-token")],
        "",
    );
    assert_eq!(code, 200);
    let job: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(job["status"], "succeeded", "{resp}");
    assert_eq!(job["pr"]["state"], "pushed", "--no-pr pushes without a PR");
    let (code, resp) = http(
        tcp(),
        "GET",
        "/v1/profiles",
        &[("X-API-Key", "s3cret-token")],
        "",
    );
    assert_eq!(code, 200);
    assert!(resp.contains("\"name\":\"sim\""));

    // Cancel and retry through the API.
    let (code, _) = http(
        tcp(),
        "POST",
        "/v1/jobs/2/retry",
        &[("X-API-Key", "s3cret-token")],
        "",
    );
    assert_eq!(code, 200);
    let out = p.orch(&["job", "wait", "2", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, resp) = http(unix(), "POST", "/v1/jobs/2/cancel", &[], "");
    assert_eq!(code, 200);
    assert!(
        resp.contains("\"status\":\"succeeded\""),
        "a finished job stays as it is"
    );
}
