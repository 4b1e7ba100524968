//! Reading the event log as it grows: the complete lines after a byte offset, so a reader that
//! runs every tick or every half second never re-reads the whole file.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

/// The size of the file at `path` (0 when missing): where a new reader starts.
pub fn end_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The events in complete lines from byte `offset` on, and the offset after the last complete
/// line. A file shorter than `offset` (replaced or truncated) is read from its end on: old
/// events are not re-sent. Garbled lines are skipped.
pub fn read_from(path: &Path, offset: u64) -> (Vec<Value>, u64) {
    let len = end_of(path);
    if len < offset {
        return (Vec::new(), len);
    }
    let Ok(mut file) = File::open(path) else {
        return (Vec::new(), offset);
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return (Vec::new(), offset);
    }
    let Some(last_newline) = bytes.iter().rposition(|b| *b == b'\n') else {
        return (Vec::new(), offset);
    };
    let events = bytes[..last_newline]
        .split(|b| *b == b'\n')
        .filter_map(|line| match serde_json::from_slice::<Value>(line) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        })
        .collect();
    (events, offset + last_newline as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_complete_new_lines_are_read_and_the_offset_follows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        assert_eq!(read_from(&p, 0), (vec![], 0));
        std::fs::write(&p, "{\"event\":\"a\"}\ngarbage\n{\"event\":\"b\"}\n{\"ev").unwrap();
        let (ev, off) = read_from(&p, 0);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1]["event"], "b");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"ent\":\"c\"}\n").unwrap();
        let (ev, off2) = read_from(&p, off);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["event"], "c");
        assert_eq!(off2, end_of(&p));
        std::fs::write(&p, "{\"event\":\"x\"}\n").unwrap();
        assert_eq!(
            read_from(&p, off2),
            (vec![], end_of(&p)),
            "a shorter file: from its end"
        );
    }
}
