//! The real-screen table test: every capture listed in tests/fixtures/tui/INDEX.md must get
//! the class the index gives it, under the built-in rules of the CLI that drew it.

use std::path::{Path, PathBuf};

use chrono::DateTime;

use super::{ScreenState, builtin_rules, classify};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tui"
    ))
}

/// (file, class) for every INDEX.md table row whose file cell is one backticked path and
/// which has a cell that is exactly a bold class name.
fn index_rows(index: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for line in index.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(file) = cells
            .first()
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
            .filter(|c| !c.contains('`'))
        else {
            continue;
        };
        let class = cells.iter().skip(1).find_map(|c| {
            c.strip_prefix("**")
                .and_then(|c| c.strip_suffix("**"))
                .filter(|c| {
                    !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
                })
        });
        if let Some(class) = class {
            rows.push((file.to_owned(), class.to_owned()));
        }
    }
    rows
}

fn preset_for(file: &str) -> Option<&'static str> {
    match file.split('/').next()? {
        "claude" => Some("claude-code"),
        "codex" => Some("codex"),
        "gemini" => Some("gemini-cli"),
        "opencode" => Some("opencode"),
        _ => None,
    }
}

#[test]
fn every_fixture_is_classified_as_its_index_says() {
    let dir = fixtures_dir();
    let index = std::fs::read_to_string(dir.join("INDEX.md")).unwrap();
    let rows = index_rows(&index);
    // The non-interactive -stdout/-stderr runs are listed with a brace pattern and a class
    // cell that is not bare bold, so the parser above skips them: they are not screens.
    assert!(rows.len() >= 130, "only {} fixture rows parsed", rows.len());
    let now = DateTime::parse_from_rfc3339("2026-11-21T23:30:00+00:00").unwrap();
    let mut failures = Vec::new();
    for (file, want) in &rows {
        let want: ScreenState = want.parse().unwrap();
        let path: &Path = &dir.join(file);
        let screen = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("fixture {file} listed in INDEX.md: {e}"));
        let preset = preset_for(file).unwrap_or_else(|| panic!("no preset for {file}"));
        let got = classify(&screen, &builtin_rules(preset).unwrap(), now);
        if got.state != want {
            failures.push(format!(
                "{file}: want {want}, got {} (rule {:?})",
                got.state, got.rule
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures misclassified:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn every_capture_on_disk_is_listed_in_the_index() {
    let dir = fixtures_dir();
    let index = std::fs::read_to_string(dir.join("INDEX.md")).unwrap();
    let listed: std::collections::BTreeSet<String> =
        index_rows(&index).into_iter().map(|(f, _)| f).collect();
    let mut unlisted = Vec::new();
    for cli in ["claude", "codex", "gemini", "opencode"] {
        for entry in std::fs::read_dir(dir.join(cli)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let rel = format!("{cli}/{name}");
            if name.ends_with(".txt") && !listed.contains(&rel) {
                unlisted.push(rel);
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "captures with no class in INDEX.md: {unlisted:?}"
    );
}

#[test]
fn index_parser_reads_file_and_bold_class_cells_only() {
    let md = "| file | x | class |\n|---|---|---|\n| `a/b.txt` | 1s | **busy** |\n| (c.txt) | 1s | - |\n| `a/{x,y}.txt` | cmd | **busy** never |\n";
    assert_eq!(
        index_rows(md),
        vec![("a/b.txt".to_owned(), "busy".to_owned())]
    );
}
