//! Routes to upstreams: which path prefix goes to which upstream, metered
//! or passed through, its prefix stripped or not.
//!
//! The gateway answers its own routes first (`/healthz`, `/metrics`,
//! `/admin/...`, `/v1/limits`); every other path is made canonical (the
//! rules of [`quota_core::path`], under the gateway's path action) and then
//! matched against the table: the route with the **longest** prefix that
//! starts the path takes it. A path no route takes is answered 404 (JSON)
//! and never forwarded.
//!
//! - A **metered** route ([`Route::metered`]) runs the enforcement layer
//!   with the route's prefix as the API prefix: the endpoint is the path
//!   after the prefix (`/v1/txt2img` is `txt2img`), as `/v1/` is by default.
//! - A **passthrough** route ([`Route::passthrough`]) forwards without a
//!   key, a count or a charge; the edge's checks (method, target, headers,
//!   the canonical path) still apply, and the client's key headers and
//!   `X-Quota-*` headers are still removed.
//! - With [`Route::strip`], the prefix is taken off the forwarded path (its
//!   last `/` kept): `/public/x?y=1` under `/public/` goes to the upstream
//!   as `/x?y=1` (after the upstream's base path, if it has one).
//!
//! Without any route, the table is one metered `/v1/` route to the
//! builder's [`upstream`](crate::GatewayBuilder::upstream).
//!
//! ```
//! use quota_gateway::Route;
//!
//! let api = Route::metered("/v1/", "http://127.0.0.1:9000".parse().unwrap());
//! let files = Route::passthrough("/static/", "http://127.0.0.1:9001/files".parse().unwrap()).strip(true);
//! assert!(api.is_metered() && !files.is_metered());
//! assert_eq!(files.prefix(), "/static/");
//! ```
//!
//! Prefixes are canonical paths that start and end with `/` (`/`, `/v1/`,
//! `/public/assets/`); `/public` is not under `/public/` (add a `/` route
//! to catch every other path). A prefix the gateway's own routes take
//! (`/admin/`) would never be reached and is refused, as are two routes
//! with one prefix.

use std::fmt;

use http::Uri;

use crate::routes;

/// One route: a path prefix and the upstream its requests go to. See the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    prefix: String,
    upstream: Uri,
    metered: bool,
    strip: bool,
}

impl Route {
    /// Requests under `prefix` are metered (the endpoint is the path after
    /// it) and forwarded to `upstream`.
    pub fn metered(prefix: impl Into<String>, upstream: Uri) -> Self {
        Route {
            prefix: prefix.into(),
            upstream,
            metered: true,
            strip: false,
        }
    }

    /// Requests under `prefix` are forwarded to `upstream` unmetered: no
    /// key needed, nothing counted or charged.
    pub fn passthrough(prefix: impl Into<String>, upstream: Uri) -> Self {
        Route {
            metered: false,
            ..Route::metered(prefix, upstream)
        }
    }

    /// Whether the prefix is taken off the forwarded path (default: no).
    #[must_use]
    pub fn strip(mut self, on: bool) -> Self {
        self.strip = on;
        self
    }

    /// The path prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where its requests go.
    pub fn upstream(&self) -> &Uri {
        &self.upstream
    }

    /// Whether its requests are metered.
    pub fn is_metered(&self) -> bool {
        self.metered
    }

    /// Whether its prefix is taken off the forwarded path.
    pub fn strips(&self) -> bool {
        self.strip
    }

    /// How many bytes of a path under it are not forwarded: the prefix
    /// but its last `/` when stripped, else none.
    pub(crate) fn stripped_len(&self) -> usize {
        if self.strip {
            self.prefix.len().saturating_sub(1)
        } else {
            0
        }
    }
}

/// Why a route cannot be served (the route's place in the list from 0, and
/// which of its settings is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The prefix is not a canonical path that starts and ends with `/`,
    /// or the gateway's own routes take it.
    #[error("route {index}: prefix {prefix:?}: {reason}")]
    BadPrefix {
        /// The route's place.
        index: usize,
        /// The prefix.
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two routes have one prefix.
    #[error("route {index}: prefix {prefix:?} is route {first}'s already")]
    DuplicatePrefix {
        /// The second route's place.
        index: usize,
        /// The prefix.
        prefix: String,
        /// The first route's place.
        first: usize,
    },
    /// The upstream is not a URL the gateway can forward to.
    #[error("route {index}: upstream {url}: {reason}")]
    Upstream {
        /// The route's place.
        index: usize,
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RouteError {
    /// The place of the route at fault in the list (from 0).
    pub fn index(&self) -> usize {
        match self {
            RouteError::BadPrefix { index, .. }
            | RouteError::DuplicatePrefix { index, .. }
            | RouteError::Upstream { index, .. } => *index,
        }
    }

    /// The setting at fault: `prefix` or `upstream`.
    pub fn setting(&self) -> &'static str {
        match self {
            RouteError::BadPrefix { .. } | RouteError::DuplicatePrefix { .. } => "prefix",
            RouteError::Upstream { .. } => "upstream",
        }
    }

    /// The problem, without the route's place (a config file names the line
    /// instead).
    pub fn problem(&self) -> String {
        match self {
            RouteError::BadPrefix { prefix, reason, .. } => format!("{prefix:?}: {reason}"),
            RouteError::DuplicatePrefix { prefix, first, .. } => {
                format!("{prefix:?} is route {first}'s already (the first [[routes]] is route 0)")
            }
            RouteError::Upstream { url, reason, .. } => format!("{url}: {reason}"),
        }
    }
}

/// The checked routes, and the order they are tried in.
#[derive(Clone, Debug)]
pub(crate) struct RouteTable {
    routes: Box<[Route]>,
    /// Indexes into `routes`, longest prefix first.
    by_length: Box<[usize]>,
}

impl RouteTable {
    /// Checks `routes` (see [`RouteError`]).
    pub(crate) fn new(routes: Vec<Route>) -> Result<Self, RouteError> {
        for (index, route) in routes.iter().enumerate() {
            check_prefix(&route.prefix).map_err(|reason| RouteError::BadPrefix {
                index,
                prefix: route.prefix.clone(),
                reason,
            })?;
            if let Some(first) = routes[..index]
                .iter()
                .position(|r| r.prefix == route.prefix)
            {
                return Err(RouteError::DuplicatePrefix {
                    index,
                    prefix: route.prefix.clone(),
                    first,
                });
            }
            check_upstream(&route.upstream).map_err(|reason| RouteError::Upstream {
                index,
                url: route.upstream.to_string(),
                reason,
            })?;
        }
        let mut by_length: Vec<usize> = (0..routes.len()).collect();
        by_length.sort_by_key(|&i| std::cmp::Reverse(routes[i].prefix.len()));
        Ok(RouteTable {
            routes: routes.into_boxed_slice(),
            by_length: by_length.into_boxed_slice(),
        })
    }

    /// The routes, in the order given.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route (its index) whose prefix is the longest that starts the
    /// canonical `path`; `None`: no route takes it (404).
    pub(crate) fn find(&self, path: &str) -> Option<usize> {
        self.by_length
            .iter()
            .copied()
            .find(|&i| path.starts_with(&*self.routes[i].prefix))
    }
}

/// Why `prefix` cannot be a route's prefix, if it cannot.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Err("a prefix starts and ends with `/` (`/v1/`, `/public/`, `/`)".into());
    }
    if prefix.contains(['?', '#', '*']) || !quota_core::path::is_canonical(prefix) {
        return Err(
            "not a canonical path (no `?`, `#`, `*`, `//`, dot-segments, or escapes of letters and digits)"
                .into(),
        );
    }
    if routes::Route::of(prefix).is_own() {
        return Err("the gateway's own routes take it (/admin/...)".into());
    }
    Ok(())
}

/// Why `upstream` cannot be forwarded to, if it cannot: the one check of
/// an upstream URL, which routes, the builder's
/// [`upstream`](crate::GatewayBuilder::upstream) and the config file's
/// `upstream` all go through (`http://` or `https://`, a host, no query).
///
/// ```
/// use quota_gateway::route_table::check_upstream;
///
/// assert!(check_upstream(&"https://api.internal/base".parse().unwrap()).is_ok());
/// assert!(check_upstream(&"ftp://h".parse().unwrap()).is_err());
/// assert!(check_upstream(&"http://h/?q=1".parse().unwrap()).is_err());
/// ```
///
/// # Errors
/// The problem, in words.
pub fn check_upstream(upstream: &Uri) -> Result<(), String> {
    crate::proxy::Proxy::check_upstream(upstream).map_err(|e| match e {
        crate::Error::Upstream { reason, .. } => reason,
        other => other.to_string(),
    })?;
    if upstream.query().is_some() {
        return Err("an upstream URL has no query".into());
    }
    Ok(())
}

impl fmt::Display for Route {
    /// `/v1/ -> http://host (metered)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.metered {
            "metered"
        } else {
            "passthrough"
        };
        let strip = if self.strip { ", stripped" } else { "" };
        write!(f, "{} -> {} ({kind}{strip})", self.prefix, self.upstream)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn table(prefixes: &[&str]) -> RouteTable {
        let routes = prefixes
            .iter()
            .map(|p| Route::passthrough(*p, uri("http://127.0.0.1:9")))
            .collect();
        RouteTable::new(routes).unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_whatever_the_order() {
        let t = table(&["/", "/v1/", "/v1/public/"]);
        assert_eq!(t.find("/v1/public/x"), Some(2));
        assert_eq!(t.find("/v1/publicx"), Some(1));
        assert_eq!(t.find("/v1/txt2img"), Some(1));
        assert_eq!(t.find("/v1"), Some(0));
        assert_eq!(t.find("/"), Some(0));
        let t = table(&["/v1/public/", "/v1/"]);
        assert_eq!(t.find("/v1/public/x"), Some(0));
        assert_eq!(t.find("/v1/x"), Some(1));
        // Whole prefixes only: `/v1` is not under `/v1/`.
        assert_eq!(t.find("/v1"), None);
        assert_eq!(t.find("/v2/x"), None);
        assert_eq!(t.find("/"), None);
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_route_and_setting() {
        let up = || uri("http://127.0.0.1:9");
        for bad in [
            "v1/", "/v1", "", "/a//b/", "/a/../b/", "/a/%7e/", "/a?b/", "/*/", "/admin/",
        ] {
            let err = RouteTable::new(vec![
                Route::metered("/ok/", up()),
                Route::metered(bad, up()),
            ])
            .unwrap_err();
            assert_eq!(
                (err.index(), err.setting()),
                (1, "prefix"),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().starts_with("route 1: prefix"), "{err}");
        }
        // `/healthz/` and `/v1/limits/` are not the gateway's own.
        table(&["/healthz/", "/v1/limits/", "/admins/"]);
    }

    #[test]
    fn duplicate_prefixes_and_bad_upstreams_are_refused() {
        let up = || uri("http://127.0.0.1:9");
        let err = RouteTable::new(vec![
            Route::metered("/v1/", up()),
            Route::passthrough("/x/", up()),
            Route::passthrough("/v1/", up()),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            RouteError::DuplicatePrefix {
                index: 2,
                prefix: "/v1/".into(),
                first: 0
            }
        );
        for bad in ["ftp://h/", "/just/a/path", "http://h/?q=1"] {
            let err = RouteTable::new(vec![Route::passthrough("/", uri(bad))]).unwrap_err();
            assert_eq!(
                (err.index(), err.setting()),
                (0, "upstream"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_stripped_route_keeps_the_last_slash_of_its_prefix() {
        let up = || uri("http://127.0.0.1:9");
        assert_eq!(Route::passthrough("/public/", up()).stripped_len(), 0);
        let stripped = Route::passthrough("/public/", up()).strip(true);
        let path = "/public/x";
        assert_eq!(&path[stripped.stripped_len()..], "/x");
        assert_eq!(Route::passthrough("/", up()).strip(true).stripped_len(), 0);
        assert_eq!(
            stripped.to_string(),
            "/public/ -> http://127.0.0.1:9/ (passthrough, stripped)"
        );
    }
}
