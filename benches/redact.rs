//! The session log filter's throughput: MB/s of chatty agent output (ANSI-coloured lines, a
//! secret and a token now and then) through `orch::redact::Stream`, in 4 KiB reads as tmux
//! pipes them; and through the real `orch redact` process when the binary is built.
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use orch::redact::{Redactor, Stream};

fn sample(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    let mut i = 0u64;
    while out.len() < bytes {
        i += 1;
        let line = match i % 50 {
            0 => format!("\x1b[32m●\x1b[0m using key sk-ant-api03-{i:032}\n"),
            25 => format!("export TOKEN=hunter2-secret-value-{}\n", i % 7),
            _ => format!(
                "\x1b[2m{i:>8}\x1b[0m ● Reading src/module_{}.rs (lines {}..{}) and thinking about it\n",
                i % 97,
                i,
                i + 40
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn secrets() -> Vec<(String, String)> {
    (0..7)
        .map(|k| (format!("S{k}"), format!("hunter2-secret-value-{k}")))
        .chain([("API".to_string(), "an-unrelated-api-key-value".to_string())])
        .collect()
}

fn in_process(data: &[u8]) -> f64 {
    let mut stream = Stream::new(Redactor::new(&secrets()));
    let mut out = Vec::with_capacity(data.len());
    let start = Instant::now();
    for chunk in data.chunks(4096) {
        stream.push(chunk, &mut out);
    }
    stream.flush(&mut out);
    let secs = start.elapsed().as_secs_f64();
    assert!(!out.windows(14).any(|w| w == b"hunter2-secret"));
    data.len() as f64 / secs / 1e6
}

fn through_process(data: &[u8]) -> Option<f64> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/orch");
    if !bin.is_file() {
        return None;
    }
    let start = Instant::now();
    let mut child = Command::new(&bin)
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut buf = vec![0u8; 65536];
        while let Ok(k) = stdout.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    for chunk in data.chunks(4096) {
        stdin.write_all(chunk).ok()?;
    }
    drop(stdin);
    let n = reader.join().ok()?;
    child.wait().ok()?;
    let secs = start.elapsed().as_secs_f64();
    assert!(n > 0);
    Some(data.len() as f64 / secs / 1e6)
}

fn main() {
    let data = sample(64 << 20);
    let mb = data.len() as f64 / 1e6;
    let best = (0..3).map(|_| in_process(&data)).fold(0.0, f64::max);
    println!(
        "redact filter, in process: {best:.0} MB/s ({mb:.0} MB in 4 KiB reads, 8 secrets + token shapes)"
    );
    match through_process(&data) {
        Some(rate) => println!("redact filter, `orch redact` process: {rate:.0} MB/s"),
        None => println!("redact filter, process: skipped (build target/release/orch first)"),
    }
}
