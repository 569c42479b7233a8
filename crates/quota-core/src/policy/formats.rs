//! Reading and writing policy files (TOML and JSON), with line and column.

use super::error::{DocPath, LineCol, PathStep, PolicyError};
use super::{Policy, PolicySpec};

impl Policy {
    /// Parses and validates a TOML policy. Errors carry the line and column
    /// (syntax) or the document path (validation; see [`Policy::locate`]).
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_toml(src: &str) -> Result<Self, PolicyError> {
        let spec: PolicySpec = toml::from_str(src).map_err(|e| {
            let at = e.span().map(|s| line_col(src, s.start));
            let message = e.message().trim().to_owned();
            // Valid TOML that is not a policy is not a syntax error.
            if toml::de::DeTable::parse(src).is_ok() {
                PolicyError::Invalid {
                    format: "TOML",
                    at,
                    message,
                }
            } else {
                PolicyError::Syntax {
                    format: "TOML",
                    at,
                    message,
                }
            }
        })?;
        Policy::new(spec)
    }

    /// Parses and validates a JSON policy.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_json(src: &str) -> Result<Self, PolicyError> {
        let spec: PolicySpec = serde_json::from_str(src).map_err(|e| {
            let at = (e.line() > 0).then(|| LineCol {
                line: e.line(),
                column: e.column(),
            });
            // The message without the position serde_json appends to it.
            let text = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&position).unwrap_or(&text).to_owned();
            match e.classify() {
                serde_json::error::Category::Data => PolicyError::Invalid {
                    format: "JSON",
                    at,
                    message,
                },
                _ => PolicyError::Syntax {
                    format: "JSON",
                    at,
                    message,
                },
            }
        })?;
        Policy::new(spec)
    }

    /// Parses a policy file, choosing the format by the first non-blank
    /// character (`{` is JSON, anything else TOML).
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn parse(src: &str) -> Result<Self, PolicyError> {
        if src.trim_start().starts_with('{') {
            Policy::from_json(src)
        } else {
            Policy::from_toml(src)
        }
    }

    /// The policy as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.spec).unwrap_or_else(|e| format!("# cannot write TOML: {e}\n"))
    }

    /// The policy as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.spec)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Where a validation error is in a TOML source: the line and column of
    /// the value its [`DocPath`] names (or the nearest enclosing one found).
    pub fn locate(src: &str, error: &PolicyError) -> Option<LineCol> {
        if let PolicyError::Syntax { at, .. } | PolicyError::Invalid { at, .. } = error {
            return *at;
        }
        let path = error.doc_path()?;
        locate_toml(src, path)
    }
}

/// Line and column (from 1) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> LineCol {
    LineCol::of(src, offset)
}

fn locate_toml(src: &str, path: &DocPath) -> Option<LineCol> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(src).ok()?;
    let mut best = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
    for step in &path.0 {
        let next = match (step, table, value) {
            (PathStep::Key(k), Some(t), _) => t.get(*k),
            (PathStep::Index(i), _, Some(v)) => match v.get_ref() {
                DeValue::Array(a) => a.get(*i),
                _ => None,
            },
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span().start);
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
        value = Some(next);
    }
    best.map(|o| line_col(src, o))
}
