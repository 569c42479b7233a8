//! Reading a policy file, with errors that name the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use quota_core::policy::{Policy, PolicyError};

/// Why a policy file could not be used: `FILE:LINE:COL: problem`.
#[derive(Debug)]
pub struct PolicyFileError {
    /// The file.
    pub path: PathBuf,
    /// Line and column, when known.
    pub at: Option<(usize, usize)>,
    /// The problem.
    pub problem: String,
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.problem)
            }
            None => write!(f, "{}: {}", self.path.display(), self.problem),
        }
    }
}

impl std::error::Error for PolicyFileError {}

/// Reads and validates a policy file (TOML, or JSON when it starts with `{`).
pub fn load(path: &Path) -> Result<Policy, PolicyFileError> {
    let src = std::fs::read_to_string(path).map_err(|e| PolicyFileError {
        path: path.to_owned(),
        at: None,
        problem: format!("cannot read policy file: {e}"),
    })?;
    parse(path, &src)
}

/// Validates policy source text read from `path`.
pub fn parse(path: &Path, src: &str) -> Result<Policy, PolicyFileError> {
    Policy::parse(src).map_err(|e| PolicyFileError {
        path: path.to_owned(),
        at: Policy::locate(src, &e).map(|lc| (lc.line, lc.column)),
        problem: problem(&e),
    })
}

/// The policy, from a file or the built-in seed.
pub fn load_or_seed(path: Option<&Path>) -> Result<Policy, PolicyFileError> {
    match path {
        Some(p) => load(p),
        None => Ok(Policy::seed()),
    }
}

fn problem(e: &PolicyError) -> String {
    match e {
        // The position goes in front; keep only the parser's words.
        PolicyError::Syntax {
            format, message, ..
        } => format!("{format} syntax: {}", message.trim()),
        PolicyError::Invalid { message, .. } => message.trim().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn validation_error_names_file_line_and_column() {
        let src = "[[endpoints]]\npath = \"a\"\n\n[[tiers]]\nname = \"basic\"\nlimits = [\n  { endpoint = \"a\", window = \"1m\", count = 0 },\n]\n";
        let err = parse(Path::new("p.toml"), src).unwrap_err();
        assert_eq!(err.at.map(|a| a.0), Some(7), "{err}");
        assert!(err.to_string().starts_with("p.toml:7:"), "{err}");
        assert!(
            err.to_string().contains("count must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let err = parse(Path::new("p.toml"), "[[tiers]]\nname = \n").unwrap_err();
        assert!(err.to_string().starts_with("p.toml:2:"), "{err}");
    }
}
