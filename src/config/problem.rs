//! Config problems and the checker that collects them while the model is built: each problem
//! is placed at its key's line and column in the document.
use std::ops::Range;

use regex::{Regex, RegexBuilder};
use toml::de::DeTable;

use super::schema::{self, Seg};

/// One thing wrong with a config, and where.
#[derive(Debug, Clone)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Collects problems while the model is built; knows the document to place them.
pub(super) struct Checker<'a> {
    pub(super) doc: &'a DeTable<'a>,
    pub(super) errors: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, path: &[Seg<'_>], message: String) {
        let span = schema::locate(self.doc, path);
        self.errors.push(Problem { span, message });
    }
    pub(super) fn warn(&mut self, path: &[Seg<'_>], message: String) {
        let span = schema::locate(self.doc, path);
        self.warnings.push(Problem { span, message });
    }
    pub(super) fn regex(&mut self, path: &[Seg<'_>], what: &str, pattern: Option<&str>) -> Option<Regex> {
        let pattern = pattern?;
        self.compiled(
            path,
            what,
            RegexBuilder::new(pattern).case_insensitive(true).build(),
        )
    }

    /// Report a pattern that did not compile; `Some` for one that did.
    pub(super) fn compiled(
        &mut self,
        path: &[Seg<'_>],
        what: &str,
        result: Result<Regex, regex::Error>,
    ) -> Option<Regex> {
        match result {
            Ok(re) => Some(re),
            Err(e) => {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or_default().trim();
                let first = last.trim_start_matches("error:").trim().to_string();
                self.error(path, format!("{what} does not compile as a regex: {first}"));
                None
            }
        }
    }
}
