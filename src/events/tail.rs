//! Following the event log: a reader that remembers its byte offset and returns only the
//! complete lines appended since the last read (a half-written last line waits for its end).
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Reads `events.jsonl` incrementally; starts over when the file shrinks (truncated or replaced).
#[derive(Debug, Clone)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    /// A reader from the start of the file at `path` (which may not exist yet).
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
        }
    }

    /// The events appended since the last call (all of them on the first call). A missing
    /// file gives nothing; garbled or non-object lines are skipped.
    pub fn read_new(&mut self) -> Vec<Value> {
        self.read_new_lines().into_iter().map(|(_, v)| v).collect()
    }

    /// [`Tail::read_new`] with each event's line as written (for printing it unchanged).
    pub fn read_new_lines(&mut self) -> Vec<(String, Value)> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
        }
        if len == self.offset {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut buf))
            .is_err()
        {
            return Vec::new();
        }
        // Only complete lines: the writer may be mid-line.
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        buf[..end]
            .split(|b| *b == b'\n')
            .filter_map(|line| match serde_json::from_slice::<Value>(line) {
                Ok(v @ Value::Object(_)) => Some((String::from_utf8_lossy(line).into_owned(), v)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_complete_new_lines_are_returned_and_a_truncation_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut tail = Tail::new(&path);
        assert!(tail.read_new().is_empty());
        std::fs::write(&path, "{\"event\":\"a\"}\nbad\n{\"event\":\"b\"").unwrap();
        let got = tail.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["event"], "a");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"}\n").unwrap();
        assert_eq!(tail.read_new()[0]["event"], "b");
        assert!(tail.read_new().is_empty());
        std::fs::write(&path, "{\"event\":\"c\"}\n").unwrap();
        assert_eq!(tail.read_new()[0]["event"], "c");
    }
}
