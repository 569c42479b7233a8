//! The gateway's own routes: one table that every path consults first (the
//! router for hyper's connections and HTTP/2, the own HTTP/1.1 path, the
//! service behind the enforcement layer, and the layer's list of unmetered
//! endpoints).
//!
//! | path | route | answered by |
//! |---|---|---|
//! | `/healthz` | [`Route::Health`] | the router (GET) |
//! | `/metrics` | [`Route::Metrics`] | the router (GET) |
//! | `/admin/ui`, `/admin/ui/...` | [`Route::Ui`] | the operator's page (`crate::ui`) |
//! | `/admin`, `/admin/...` | [`Route::Admin`] | the admin API |
//! | `/v1/limits` | [`Route::Limits`] | the service behind the layer: a valid key (or an anonymous caller), unmetered |
//! | anything else | [`Route::Proxy`] | the routes to upstreams ([`crate::route_table`]): a metered route's layer then its upstream, a passthrough route's upstream, or 404 |

/// The API prefix before endpoint names.
pub(crate) const API_PREFIX: &str = "/v1/";

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Liveness and the store's state.
    Health,
    /// Prometheus text.
    Metrics,
    /// The operator's page (HTML, a session cookie).
    Ui,
    /// The admin API.
    Admin,
    /// The caller's limits: behind the layer (a key is needed), not metered.
    Limits,
    /// Everything else: the layer's checks, then the upstream.
    Proxy,
}

impl Route {
    /// The route of a request for `path` (the URI's path: for [`Route::Limits`]
    /// and [`Route::Proxy`], the canonical one the layer hands on).
    pub(crate) fn of(path: &str) -> Route {
        match path {
            "/healthz" => Route::Health,
            "/metrics" => Route::Metrics,
            "/admin/ui" => Route::Ui,
            p if p.starts_with("/admin/ui/") => Route::Ui,
            "/admin" => Route::Admin,
            p if p.starts_with("/admin/") => Route::Admin,
            p if p.strip_prefix(API_PREFIX) == Some(LIMITS) => Route::Limits,
            _ => Route::Proxy,
        }
    }

    /// Whether the gateway answers it itself (the own HTTP/1.1 path, which
    /// only proxies, leaves those to hyper's path).
    pub(crate) fn is_own(self) -> bool {
        self != Route::Proxy
    }

    /// The methods the router serves it for (`None`: any; the route itself
    /// decides).
    pub(crate) fn methods(self) -> Option<&'static str> {
        match self {
            Route::Health | Route::Metrics => Some("GET, HEAD"),
            Route::Ui | Route::Admin | Route::Limits | Route::Proxy => None,
        }
    }

    /// Endpoint names under [`API_PREFIX`] that the gateway answers itself:
    /// the layer checks their key but meters nothing.
    pub(crate) const UNMETERED: [&'static str; 1] = [LIMITS];
}

/// `/v1/limits`'s endpoint name.
const LIMITS: &str = "limits";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_route() {
        assert_eq!(Route::of("/healthz"), Route::Health);
        assert_eq!(Route::of("/metrics"), Route::Metrics);
        assert_eq!(Route::of("/admin"), Route::Admin);
        assert_eq!(Route::of("/admin/accounts/x"), Route::Admin);
        assert_eq!(Route::of("/admin/ui"), Route::Ui);
        assert_eq!(Route::of("/admin/ui/accounts"), Route::Ui);
        assert_eq!(Route::of("/admin/uix"), Route::Admin);
        assert_eq!(Route::of("/v1/limits"), Route::Limits);
        for proxied in [
            "/v1/txt2img",
            "/v1/limits/x",
            "/v1/limit",
            "/administrator",
            "/healthz/x",
            "/",
        ] {
            assert_eq!(Route::of(proxied), Route::Proxy, "{proxied}");
            assert!(!Route::of(proxied).is_own());
        }
        assert_eq!(Route::UNMETERED, ["limits"]);
        assert_eq!(
            Route::of(&format!("{API_PREFIX}{}", Route::UNMETERED[0])),
            Route::Limits
        );
    }
}
