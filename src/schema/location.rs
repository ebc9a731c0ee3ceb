//! Where a problem is in a schema file. A [`SourceFile`] turns byte offsets
//! (from `toml::Spanned` values and toml's own errors) into line numbers, and a
//! [`KeyPath`] is the dotted key (`jobs.send-report.retry.backoff`,
//! `schedules[0].cron`) that every error names. [`path_at`] finds the key that
//! covers an offset, so toml's own errors name a key too.

use super::error::SchemaError;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use toml::de::DeValue;

/// One schema file: its path relative to the project and its text.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// e.g. `schema/reports.toml`.
    pub rel: PathBuf,
    /// The whole file.
    pub text: String,
}

impl SourceFile {
    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// An error at `span` (its start gives the line) under `key`.
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<&KeyPath>,
        message: impl Into<String>,
    ) -> SchemaError {
        SchemaError {
            file: self.rel.clone(),
            line: span.map(|s| self.line_of(s.start)),
            key: key.map(KeyPath::to_string),
            message: message.into(),
        }
    }

    /// An error about the value at `span` under `key`.
    pub fn at(&self, span: Range<usize>, key: &KeyPath, message: impl Into<String>) -> SchemaError {
        self.error(Some(span), Some(key), message)
    }
}

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A dotted key such as `jobs.send-report.retry.backoff` or `schedules[2].after`.
/// Keys that are not bare TOML keys are quoted: `jobs."a.b".slots`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The path of a top-level key.
    pub fn root(key: &str) -> Self {
        Self(vec![Segment::Key(key.to_string())])
    }

    /// This path followed by `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    /// This path followed by `[index]`.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &KeyPath) -> Self {
        let mut next = self.clone();
        next.0.extend(rest.0.iter().cloned());
        next
    }

    fn push_front(mut self, segment: Segment) -> Self {
        self.0.insert(0, segment);
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The path, below `value`, of the deepest key or value whose span covers
/// `offset`; `None` when nothing below `value` does.
pub(crate) fn path_at(value: &DeValue<'_>, offset: usize) -> Option<KeyPath> {
    let covers = |span: Range<usize>| span.contains(&offset);
    match value {
        DeValue::Table(table) => table.iter().find_map(|(k, v)| {
            let here = Segment::Key(k.get_ref().to_string());
            if covers(k.span()) {
                return Some(KeyPath(vec![here]));
            }
            match path_at(v.get_ref(), offset) {
                Some(deeper) => Some(deeper.push_front(here)),
                None if covers(v.span()) => Some(KeyPath(vec![here])),
                None => None,
            }
        }),
        DeValue::Array(items) => {
            items
                .iter()
                .enumerate()
                .find_map(|(i, v)| match path_at(v.get_ref(), offset) {
                    Some(deeper) => Some(deeper.push_front(Segment::Index(i))),
                    None if covers(v.span()) => Some(KeyPath(vec![Segment::Index(i)])),
                    None => None,
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::DeTable;

    #[test]
    fn keys_are_dotted_and_quoted_when_needed() {
        let k = KeyPath::root("jobs").key("a.b").key("slots");
        assert_eq!(k.to_string(), r#"jobs."a.b".slots"#);
        let s = KeyPath::root("schedules").index(1).key("cron");
        assert_eq!(s.to_string(), "schedules[1].cron");
    }

    #[test]
    fn path_at_finds_the_deepest_key() {
        let text = "[jobs.x]\nretry = { max_attempts = 2, backoff = 3 }\n";
        let doc = DeTable::parse(text).expect("valid toml");
        let offset = text.find('3').expect("present");
        let root = DeValue::Table(doc.into_inner());
        let path = path_at(&root, offset).expect("found");
        assert_eq!(path.to_string(), "jobs.x.retry.backoff");
        let src = SourceFile {
            rel: "schema/a.toml".into(),
            text: text.to_string(),
        };
        assert_eq!(src.line_of(offset), 2);
        assert_eq!(src.line_of(0), 1);
    }
}
