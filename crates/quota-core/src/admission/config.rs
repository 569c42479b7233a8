//! [`AdmissionConfig`]: what a gateway decides once for every request.

use super::RefundOn;
use crate::path::PathAction;

/// The settings an [`Admission`](super::Admission) runs under, shared by
/// every request of a gateway.
///
/// Defaults: prefix `/v1/`, paths that are not canonical refused
/// ([`PathAction::Refuse`]), no unmetered endpoint, enforcing (not shadow),
/// the seed's headers only, refunds when the upstream cannot be reached
/// ([`RefundOn::Unreachable`]).
///
/// ```
/// use quota_core::admission::AdmissionConfig;
///
/// let config = AdmissionConfig::default().prefix("/api").unmetered(["limits"]).shadow(true);
/// assert_eq!(config.prefix_str(), "/api/"); // a missing trailing `/` is added
/// assert!(config.is_unmetered("limits"));
/// assert!(config.is_shadow());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    prefix: Box<str>,
    path_action: PathAction,
    unmetered: Vec<Box<str>>,
    shadow: bool,
    ietf_headers: bool,
    refund_on: RefundOn,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            prefix: "/v1/".into(),
            path_action: PathAction::Refuse,
            unmetered: Vec::new(),
            shadow: false,
            ietf_headers: false,
            refund_on: RefundOn::Unreachable,
        }
    }
}

impl AdmissionConfig {
    /// The path prefix before endpoint names: with `/v1/`,
    /// `/v1/prompt/enhance` is endpoint `prompt/enhance`. A missing
    /// trailing `/` is added.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = if prefix.ends_with('/') {
            prefix.into()
        } else {
            format!("{prefix}/").into()
        };
        self
    }

    /// What to do with a path that is not canonical (see
    /// [`crate::path`]): refuse it (400) or resolve it.
    #[must_use]
    pub fn path_action(mut self, action: PathAction) -> Self {
        self.path_action = action;
        self
    }

    /// Endpoint names under the prefix that need a valid key but are not
    /// metered, charged or limited.
    #[must_use]
    pub fn unmetered<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.unmetered = names.into_iter().map(|n| n.as_ref().into()).collect();
        self
    }

    /// Shadow mode: decide and report every request, refuse none (except
    /// a path that cannot be served as checked); charge no credit and
    /// check no body.
    #[must_use]
    pub fn shadow(mut self, on: bool) -> Self {
        self.shadow = on;
        self
    }

    /// Also report the IETF draft's `RateLimit-Policy` and `RateLimit`
    /// fields ([`RateReport::with_ietf`](crate::report::RateReport::with_ietf)).
    #[must_use]
    pub fn ietf_headers(mut self, on: bool) -> Self {
        self.ietf_headers = on;
        self
    }

    /// When an admitted request's units and credit are given back: when
    /// its upstream cannot be reached or times out (the default), also on
    /// the upstream's own 5xx answers, or never (see [`RefundOn`]).
    #[must_use]
    pub fn refund_on(mut self, on: RefundOn) -> Self {
        self.refund_on = on;
        self
    }

    /// When admitted requests are refunded.
    pub fn refunds(&self) -> RefundOn {
        self.refund_on
    }

    /// The path prefix, with its trailing `/`.
    pub fn prefix_str(&self) -> &str {
        &self.prefix
    }

    /// What is done with a path that is not canonical.
    pub fn action(&self) -> PathAction {
        self.path_action
    }

    /// The unmetered endpoint names.
    pub fn unmetered_names(&self) -> &[Box<str>] {
        &self.unmetered
    }

    /// Whether `name` (an endpoint name under the prefix) is unmetered.
    pub fn is_unmetered(&self, name: &str) -> bool {
        self.unmetered.iter().any(|u| **u == *name)
    }

    /// Whether shadow mode is on.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Whether the IETF fields are reported.
    pub fn reports_ietf_headers(&self) -> bool {
        self.ietf_headers
    }
}
