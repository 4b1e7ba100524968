//! redact: secret values and well-known token shapes replaced by `[redacted:NAME]`, on whole
//! texts (scrollback, events) and on a byte stream cut anywhere (the session log's pipe filter).
use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};

/// Values shorter than this are not redacted: `ORCH_SIM_FIND = "1"` must not blank every `1`.
pub const MIN_SECRET_LEN: usize = 8;

/// Well-known token shapes: (name in the marker, pattern, keeps its first group). A kept
/// group (the `Bearer ` of a header) stays in the text; the rest is replaced.
const SHAPES: &[(&str, &str, bool)] = &[
    ("anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{16,}", false),
    ("openai-key", r"sk-(?:proj-)?[A-Za-z0-9_\-]{20,}", false),
    ("github-token", r"github_pat_[A-Za-z0-9_]{20,}", false),
    ("github-token", r"gh[poursa]_[A-Za-z0-9]{20,}", false),
    ("slack-token", r"xox[baprs]-[A-Za-z0-9\-]{10,}", false),
    ("aws-access-key", r"AKIA[0-9A-Z]{16}", false),
    (
        "bearer",
        r"(?i:(bearer[ \t]+))[A-Za-z0-9._~+/=\-]{12,}",
        true,
    ),
];

/// How many bytes of a long unterminated line the stream holds back at least: the longest
/// token a shape can still be growing into is kept whole by [`safe_cut`] anyway.
const HOLD: usize = 512;
/// A line fragment longer than this is emitted up to a safe cut instead of waiting for `\n`.
const MAX_LINE: usize = 8192;

/// Replaces secrets in text. Built from `(NAME, value)` pairs (an agent's `env` and
/// `secrets_dir`) plus the token shapes; values shorter than [`MIN_SECRET_LEN`] are ignored.
#[derive(Debug, Clone)]
pub struct Redactor {
    re: Regex,
    /// Marker name of each alternative, in pattern order: the secrets, then the shapes.
    names: Vec<String>,
    /// For each alternative, its capture group index (and whether it keeps a prefix group).
    groups: Vec<(usize, Option<usize>)>,
    longest: usize,
}

static TOKENS_ONLY: LazyLock<Redactor> = LazyLock::new(|| Redactor::new(&[]));

impl Redactor {
    pub fn new(secrets: &[(String, String)]) -> Self {
        Self::build(secrets).unwrap_or_else(|e| {
            // Only the escaped values can fail to compile (size limits): keep the shapes.
            tracing::warn!("cannot build the secret filter ({e}); redacting token shapes only");
            Self::build(&[]).expect("the token shapes compile")
        })
    }

    /// The length of the longest secret value (how far a split secret can span).
    pub fn longest(&self) -> usize {
        self.longest
    }

    fn build(secrets: &[(String, String)]) -> Result<Self, regex::Error> {
        let mut secrets: Vec<&(String, String)> = secrets
            .iter()
            .filter(|(_, v)| v.len() >= MIN_SECRET_LEN)
            .collect();
        // The longest value first: a secret that contains another is replaced whole.
        secrets.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        secrets.dedup_by(|a, b| a.1 == b.1);
        let mut parts = Vec::new();
        let mut names = Vec::new();
        let mut groups = Vec::new();
        let mut next_group = 1;
        for (name, value) in &secrets {
            parts.push(format!("({})", regex::escape(value)));
            names.push(name.clone());
            groups.push((next_group, None));
            next_group += 1;
        }
        for &(name, pattern, keeps) in SHAPES {
            parts.push(format!("({pattern})"));
            names.push(name.to_string());
            groups.push((next_group, keeps.then_some(next_group + 1)));
            next_group += if keeps { 2 } else { 1 };
        }
        let re = regex::bytes::RegexBuilder::new(&parts.join("|"))
            .size_limit(64 << 20)
            .build()?;
        let longest = secrets.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        Ok(Redactor {
            re,
            names,
            groups,
            longest,
        })
    }

    /// The token shapes alone (no secret values): for text of no particular agent.
    pub fn tokens_only() -> &'static Redactor {
        &TOKENS_ONLY
    }

    /// `bytes` with every secret replaced.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        self.re.replace_all(bytes, |caps: &Captures<'_>| {
            for (i, (group, keep)) in self.groups.iter().enumerate() {
                if caps.get(*group).is_some() {
                    let mut out = keep
                        .and_then(|k| caps.get(k))
                        .map(|m| m.as_bytes().to_vec())
                        .unwrap_or_default();
                    out.extend_from_slice(format!("[redacted:{}]", self.names[i]).as_bytes());
                    return out;
                }
            }
            b"[redacted]".to_vec()
        })
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.redact_bytes(text.as_bytes())).into_owned()
    }

    /// Every string inside a JSON value redacted (before it is serialized: escaping would
    /// otherwise hide a value containing quotes or backslashes from the match).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if self.re.is_match(s.as_bytes()) => {
                *s = self.redact(s);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}

/// True for a byte a token shape can contain.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// Pure: how many leading bytes of `buf` (the unprocessed stream) can be redacted and emitted
/// now, without cutting through something that may still become a secret. Complete lines go
/// at once; the last fragment waits for its `\n` unless it grew past [`MAX_LINE`], then it is
/// cut before the token it may be in (and before a `Bearer ` just before it), keeping at least
/// `longest - 1` bytes for a literal secret still arriving.
pub fn safe_cut(buf: &[u8], longest: usize) -> usize {
    let line_end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let tail = buf.len() - line_end;
    if tail <= MAX_LINE {
        return line_end;
    }
    let hold = HOLD.max(longest.saturating_sub(1));
    let mut cut = buf.len().saturating_sub(hold);
    while cut > line_end && token_byte(buf[cut - 1]) {
        cut -= 1;
    }
    // A `Bearer ` right before the token belongs with it.
    let mut head = cut;
    while head > line_end && matches!(buf[head - 1], b' ' | b'\t') {
        head -= 1;
    }
    if buf[line_end..head]
        .to_ascii_lowercase()
        .ends_with(b"bearer")
    {
        cut = head - "bearer".len();
    }
    cut.max(line_end)
}

/// A redacting stream: bytes in (cut anywhere), redacted bytes out, never an unredacted part of
/// a secret that was split across two reads.
#[derive(Debug)]
pub struct Stream {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl Stream {
    pub fn new(redactor: Redactor) -> Self {
        Stream {
            redactor,
            pending: Vec::new(),
        }
    }

    /// Feed `input`; append what can be emitted now to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        let cut = safe_cut(&self.pending, self.redactor.longest);
        if cut == 0 {
            return;
        }
        out.extend_from_slice(&self.redactor.redact_bytes(&self.pending[..cut]));
        self.pending.drain(..cut);
    }

    /// Emit everything held back (end of input, or the pane went quiet).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.redactor.redact_bytes(&self.pending));
        self.pending.clear();
    }

    /// Bytes held back, waiting for the end of their line.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// How long the filter waits on a quiet pane before it writes out a held-back line fragment
/// (a prompt without a newline still reaches the log).
const QUIET_FLUSH_MS: i32 = 1000;

/// `orch redact`: the session log filter. Reads the pane's output on stdin, writes it redacted
/// to stdout, until end of input. The secret values come from `secrets_file` (JSON pairs
/// `[[NAME, value], ...]`), which is deleted once read; without it only token shapes go.
pub fn run_filter(secrets_file: Option<&std::path::Path>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let secrets: Vec<(String, String)> = match secrets_file {
        Some(path) => {
            let text = std::fs::read(path);
            let _ = std::fs::remove_file(path);
            match text.map(|t| serde_json::from_slice(&t)) {
                Ok(Ok(list)) => list,
                Ok(Err(e)) => {
                    eprintln!("orch redact: {}: {e}; token shapes only", path.display());
                    Vec::new()
                }
                Err(e) => {
                    eprintln!("orch redact: {}: {e}; token shapes only", path.display());
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    let mut stream = Stream::new(Redactor::new(&secrets));
    drop(secrets);
    // Unbuffered reads of fd 0, so that poll() sees exactly what is left to read.
    // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
    });
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        if stream.pending() > 0 && !readable_within(QUIET_FLUSH_MS) {
            stream.flush(&mut out);
        } else {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            stream.push(&buf[..n], &mut out);
        }
        if !out.is_empty() {
            stdout.write_all(&out)?;
            stdout.flush()?;
            out.clear();
        }
    }
    stream.flush(&mut out);
    stdout.write_all(&out)?;
    stdout.flush()
}

/// True when stdin has data (or end of input) within `ms` milliseconds.
fn readable_within(ms: i32) -> bool {
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Vec<(String, String)> {
        vec![
            ("API_KEY".into(), "hunter2-very-secret".into()),
            ("SHORT".into(), "1".into()),
        ]
    }

    #[test]
    fn env_values_and_token_shapes_are_replaced_by_name() {
        let r = Redactor::new(&secrets());
        let text = "key=hunter2-very-secret 1 sk-ant-api03-abcdefghijklmnopqrstuv \
                    sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX ghp_abcdefghijklmnopqrstuvwxyz0123456789 \
                    github_pat_11ABCDEFG0123456789_abcdefghij xoxb-1234567890-abcdef \
                    AKIAIOSFODNN7EXAMPLE\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.x";
        let out = r.redact(text);
        assert_eq!(
            out,
            "key=[redacted:API_KEY] 1 [redacted:anthropic-key] [redacted:openai-key] \
             [redacted:github-token] [redacted:github-token] [redacted:slack-token] \
             [redacted:aws-access-key]\nAuthorization: Bearer [redacted:bearer]"
        );
    }

    #[test]
    fn plain_prose_is_left_alone() {
        let r = Redactor::new(&secrets());
        let text = "the bearer of news asked 1 question; sk-short; task-ant";
        assert_eq!(r.redact(text), text);
    }

    #[test]
    fn json_strings_are_redacted_before_escaping() {
        let r = Redactor::new(&[("Q".into(), "a\"quoted\\secret".into())]);
        let mut v = serde_json::json!({"screen": ["x a\"quoted\\secret y"], "n": 1});
        r.redact_json(&mut v);
        assert_eq!(v["screen"][0], "x [redacted:Q] y");
    }

    #[test]
    fn a_secret_split_across_reads_is_still_redacted() {
        let text = b"start hunter2-very-secret and sk-ant-api03-abcdefghijklmnopqrstuv end\nmore\n";
        for cut in 1..text.len() {
            let mut s = Stream::new(Redactor::new(&secrets()));
            let mut out = Vec::new();
            s.push(&text[..cut], &mut out);
            s.push(&text[cut..], &mut out);
            s.flush(&mut out);
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("hunter2"), "cut {cut}: {out}");
            assert!(!out.contains("abcdefghijkl"), "cut {cut}: {out}");
            assert!(out.ends_with("end\nmore\n"), "{out}");
        }
    }

    #[test]
    fn a_long_line_without_newline_is_emitted_but_never_through_a_token() {
        let mut line = vec![b'x'; MAX_LINE];
        line.extend_from_slice(b" Authorization: Bearer ");
        line.extend_from_slice(&[b'A'; 600]);
        let cut = safe_cut(&line, 20);
        assert!(
            cut > 0 && cut <= line.len() - 600 - "Bearer ".len(),
            "{cut}"
        );
        assert!(
            String::from_utf8_lossy(&line[cut..]).contains("Bearer "),
            "the bearer prefix stays with its token"
        );
        assert_eq!(safe_cut(b"abc\ndef", 20), 4, "complete lines go at once");
    }
}
