//! The `[[routes]]` section of a config file (TOML), with errors that name
//! the file, line and column.
//!
//! ```toml
//! [[routes]]
//! prefix = "/v1/"                       # metered: the endpoint is the path after it
//! upstream = "http://127.0.0.1:9000"
//!
//! [[routes]]
//! prefix = "/static/"
//! upstream = "http://127.0.0.1:9001/files"
//! metered = false                       # passthrough: no key, nothing counted
//! strip = true                          # /static/a.css is forwarded as /files/a.css
//! ```
//!
//! `metered` defaults to `true`, `strip` to `false`. Every other key of the
//! file is left to its reader; an unknown key inside a route is an error.
//! The routes are checked as [`GatewayBuilder::build`](crate::GatewayBuilder::build)
//! would check them ([`RouteError`]), so a bad route is reported here with
//! its line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::route_table::{Route, RouteError, RouteTable};

/// Why the `[[routes]]` of a config file cannot be used:
/// `FILE:LINE:COL: routes: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFileError {
    /// The file.
    pub path: PathBuf,
    /// Line and column (from 1).
    pub at: (usize, usize),
    /// The problem.
    pub problem: String,
}

impl fmt::Display for RouteFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.at;
        write!(
            f,
            "{}:{line}:{col}: routes: {}",
            self.path.display(),
            self.problem
        )
    }
}

impl std::error::Error for RouteFileError {}

/// The file's keys this module reads (the others are its reader's).
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    routes: Option<Spanned<Vec<RouteSpec>>>,
}

/// One `[[routes]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    prefix: Spanned<String>,
    upstream: Spanned<String>,
    #[serde(default)]
    metered: Option<bool>,
    #[serde(default)]
    strip: Option<bool>,
}

/// The routes of the config file text `src` read from `path`, checked;
/// empty when it has no `[[routes]]`.
///
/// ```
/// use std::path::Path;
/// let src = "listen = \"127.0.0.1:8080\"\n\n[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9000\"\n";
/// let routes = quota_gateway::route_file::parse(Path::new("quota.toml"), src).unwrap();
/// assert_eq!(routes[0].prefix(), "/v1/");
/// let bad = src.replace("/v1/", "v1");
/// let err = quota_gateway::route_file::parse(Path::new("quota.toml"), &bad).unwrap_err();
/// assert_eq!(err.to_string().split(": ").next(), Some("quota.toml:4:10"));
/// ```
///
/// # Errors
/// [`RouteFileError`]: a syntax error, a missing or unknown key, an
/// upstream that is not a URL, or a route [`RouteError`] refuses.
pub fn parse(path: &Path, src: &str) -> Result<Vec<Route>, RouteFileError> {
    let at = |span: Range<usize>, problem: String| RouteFileError {
        path: path.to_owned(),
        at: line_col(src, span.start),
        problem,
    };
    let doc: Document = toml::from_str(src)
        .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim().to_owned()))?;
    let Some(specs) = doc.routes else {
        return Ok(Vec::new());
    };
    let whole = specs.span();
    let specs = specs.into_inner();
    if specs.is_empty() {
        return Err(at(
            whole,
            "no route: add a [[routes]] table, or remove `routes`".into(),
        ));
    }
    let mut routes = Vec::with_capacity(specs.len());
    for spec in &specs {
        let upstream = spec.upstream.get_ref().trim().parse().map_err(|e| {
            let problem = format!("upstream {:?}: {e}", spec.upstream.get_ref());
            at(spec.upstream.span(), problem)
        })?;
        let prefix = spec.prefix.get_ref().clone();
        let route = match spec.metered {
            Some(false) => Route::passthrough(prefix, upstream),
            Some(true) | None => Route::metered(prefix, upstream),
        };
        routes.push(route.strip(spec.strip.unwrap_or(false)));
    }
    match RouteTable::new(routes.clone()) {
        Ok(_) => Ok(routes),
        Err(e) => {
            let spec = specs.get(e.index());
            let span = match (spec, e.setting()) {
                (Some(s), "upstream") => s.upstream.span(),
                (Some(s), _) => s.prefix.span(),
                (None, _) => whole,
            };
            Err(at(span, route_problem(&e)))
        }
    }
}

/// A route's problem as the file's reader should read it.
fn route_problem(e: &RouteError) -> String {
    format!("{}: {}", e.setting(), e.problem())
}

/// Line and column (from 1) of a byte offset of `src`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    fn err(src: &str) -> String {
        parse(Path::new("q.toml"), src).unwrap_err().to_string()
    }

    #[test]
    fn routes_are_read_with_their_defaults_and_other_keys_are_left_alone() {
        let src = "upstream_timeout = 5\n[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9000\"\n\n[[routes]]\nprefix = \"/static/\"\nupstream = \"http://127.0.0.1:9001/files\"\nmetered = false\nstrip = true\n";
        let routes = parse(Path::new("q.toml"), src).unwrap();
        assert_eq!(
            routes,
            vec![
                Route::metered("/v1/", "http://127.0.0.1:9000".parse().unwrap()),
                Route::passthrough("/static/", "http://127.0.0.1:9001/files".parse().unwrap())
                    .strip(true),
            ]
        );
        assert!(parse(Path::new("q.toml"), "listen = \"x\"\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn each_bad_route_names_its_line_and_column() {
        let head = "[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9000\"\n";
        // A duplicate prefix: the second one's line.
        let e = err(&format!(
            "{head}[[routes]]\nprefix = \"/v1/\"\nupstream = \"http://127.0.0.1:9\"\n"
        ));
        assert!(
            e.starts_with("q.toml:5:10: routes: prefix: \"/v1/\" is route 0's"),
            "{e}"
        );
        // A bad upstream.
        let e = err(&format!(
            "{head}[[routes]]\nprefix = \"/a/\"\nupstream = \"ftp://h\"\n"
        ));
        assert!(
            e.starts_with("q.toml:6:12: routes: upstream: ftp://h/: only http"),
            "{e}"
        );
        let e = err(&format!(
            "{head}[[routes]]\nprefix = \"/a/\"\nupstream = \"http://\"\n"
        ));
        assert!(
            e.starts_with("q.toml:6:12: routes: upstream \"http://\""),
            "{e}"
        );
        // The gateway's own prefix, a prefix that is not canonical.
        let e = err("[[routes]]\nprefix = \"/admin/\"\nupstream = \"http://h\"\n");
        assert!(
            e.starts_with("q.toml:2:10: routes: prefix: \"/admin/\": the gateway's own"),
            "{e}"
        );
        let e = err("[[routes]]\nprefix = \"/a/../b/\"\nupstream = \"http://h\"\n");
        assert!(e.starts_with("q.toml:2:10: routes: prefix:"), "{e}");
        // An unknown key, a missing one, a wrong type.
        let e = err(&format!("{head}metred = false\n"));
        assert!(
            e.starts_with("q.toml:4:1: routes: unknown field `metred`"),
            "{e}"
        );
        let e = err("[[routes]]\nprefix = \"/v1/\"\n");
        assert!(
            e.starts_with("q.toml:1:1: routes: missing field `upstream`"),
            "{e}"
        );
        let e = err(&format!("{head}strip = \"yes\"\n"));
        assert!(e.starts_with("q.toml:4:9: routes:"), "{e}");
        assert!(err("routes = []\n").contains("no route"));
    }
}
