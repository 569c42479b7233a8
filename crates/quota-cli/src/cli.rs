//! The command line: subcommands and their flags.
//!
//! `serve` flags are all optional here so that a value given on the command
//! line or in the environment (clap reads both, the flag first) can be told
//! from one left to the config file or the default: they become the
//! [`Overrides`] of the library's settings (`quota_gateway::settings`).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use quota_gateway::settings::{LogFormat, Overrides};

/// `quota`: a rate-limiting API gateway and the tools around it.
#[derive(Debug, Parser)]
#[command(name = "quota", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway: a rate-limiting reverse proxy in front of an API.
    Serve(Box<ServeArgs>),
    /// Send one request, curl-like, retrying 429s (a minute limit: wait and retry; a daily one: give up).
    Call(CallArgs),
    /// Replay a CSV trace through a policy offline and count the decisions.
    Simulate(SimulateArgs),
    /// Show, validate or export a policy file.
    Policy(PolicyArgs),
}

/// Flags of `quota serve`. Precedence: flag > environment > config file > default.
#[derive(Debug, Args, Default)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, env = "QUOTA_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Also serve Envoy's rate limit service (gRPC, RLS v3) on this
    /// address, with the same policy, store and accounts.
    #[arg(long, env = "QUOTA_GRPC_LISTEN", value_name = "ADDR")]
    pub(crate) grpc_listen: Option<String>,
    /// The domain Envoy's requests must name (default `quota`).
    #[arg(long, env = "QUOTA_GRPC_DOMAIN", value_name = "NAME")]
    pub(crate) grpc_domain: Option<String>,
    /// The API to forward admitted requests to, e.g. http://127.0.0.1:9000
    /// or `https://api.internal[:port][/base]` (its certificate verified).
    #[arg(long, env = "QUOTA_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// A PEM file of CA certificates also trusted for an https:// upstream
    /// (a private CA), besides the Web PKI's roots.
    #[arg(long, env = "QUOTA_UPSTREAM_CA", value_name = "FILE")]
    pub(crate) upstream_ca: Option<PathBuf>,
    /// Policy file (TOML or JSON); the built-in seed policy when absent.
    #[arg(long, env = "QUOTA_POLICY", value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Where limit counters live: `memory` (default), a Redis URL (redis://host:port)
    /// or a Redis Cluster (redis+cluster://host:port[,host:port...]).
    #[arg(long, env = "QUOTA_STORE", value_name = "memory|redis://...")]
    pub(crate) store: Option<String>,
    /// Key prefix for the Redis store (default `quota:`), so several deployments can share one Redis.
    #[arg(long, env = "QUOTA_REDIS_PREFIX", value_name = "PREFIX")]
    pub(crate) redis_prefix: Option<String>,
    /// What the Redis store does when Redis cannot answer: `closed` (503),
    /// `open` (admit) or `local:N` (decide locally with 1/N of each budget).
    #[arg(long, env = "QUOTA_REDIS_FAILURE", value_name = "closed|open|local:N")]
    pub(crate) redis_failure: Option<String>,
    /// Bearer token of the admin API (`/admin/...`), `NAME=SECRET` or `SECRET`
    /// (named `admin`): the name is the `who` of the audit lines. The admin
    /// API is off without one.
    #[arg(
        long,
        env = "QUOTA_ADMIN_TOKEN",
        value_name = "[NAME=]TOKEN",
        hide_env_values = true
    )]
    pub(crate) admin_token: Option<String>,
    /// Directory of the embedded accounts database (default ./quota-data).
    #[arg(long, env = "QUOTA_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Decide, send headers and count metrics, but never refuse a request.
    #[arg(long, env = "QUOTA_SHADOW", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) shadow: Option<bool>,
    /// When an admitted request's units and credit are given back:
    /// `unreachable` (default: the gateway's own 502 or 504, the upstream
    /// could not be reached or timed out), `unreachable,5xx` (also the
    /// upstream's own 5xx answers) or `none`.
    #[arg(long, env = "QUOTA_REFUND_ON", value_name = "none|unreachable[,5xx]")]
    pub(crate) refund_on: Option<String>,
    /// Also send the IETF draft's `RateLimit-Policy` and `RateLimit` headers.
    #[arg(long, env = "QUOTA_IETF_HEADERS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) ietf_headers: Option<bool>,
    /// What to do with a request path that is not canonical (`..`, `%2F`,
    /// `//`): `refuse` it with 400 (default), or `normalize` it and forward
    /// only the normalized form. See docs/security.md.
    #[arg(long, env = "QUOTA_PATH_ACTION", value_name = "refuse|normalize")]
    pub(crate) path_action: Option<String>,
    /// Which code serves HTTP/1.1: `own` (default; the gateway's own path
    /// for bodiless requests, hyper for the rest) or `hyper` (hyper for
    /// every request). HTTP/2 is always hyper's.
    #[arg(long, env = "QUOTA_HTTP1", value_name = "own|hyper")]
    pub(crate) http1: Option<String>,
    /// Forward the API key (`X-API-Key`, or `Authorization: Bearer KEY`) to
    /// the upstream; by default it is removed (the upstream learns the caller
    /// from `X-Quota-Account` and `X-Quota-Tier`).
    #[arg(long, env = "QUOTA_FORWARD_CREDENTIALS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) forward_credentials: Option<bool>,
    /// Address blocks of the proxies in front of the gateway, comma-separated
    /// (`10.0.0.0/8,::1`): only from these is a request's `X-Forwarded-For`
    /// believed (kept and appended to) and the client taken from it; from
    /// any other peer it is replaced (default: none).
    #[arg(
        long,
        env = "QUOTA_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        value_delimiter = ','
    )]
    pub(crate) trusted_proxies: Option<Vec<String>>,
    /// Seconds to wait for the upstream's response headers before answering 504 (default 30).
    #[arg(long, env = "QUOTA_UPSTREAM_TIMEOUT", value_name = "SECS")]
    pub(crate) upstream_timeout: Option<f64>,
    /// Seconds a client has to send a whole request head, on a new connection
    /// or between requests on a kept-alive one, before the connection is
    /// closed; also how long an HTTP/2 connection may stay without a request
    /// in flight before it is shut down gracefully (default 60).
    #[arg(long, env = "QUOTA_CLIENT_TIMEOUT", value_name = "SECS")]
    pub(crate) client_timeout: Option<f64>,
    /// Seconds to let in-flight requests finish on shutdown (default 30).
    #[arg(long, env = "QUOTA_SHUTDOWN_TIMEOUT", value_name = "SECS")]
    pub(crate) shutdown_timeout: Option<f64>,
    /// Client connections open at once; further clients wait in the
    /// listen queue until one closes (default 10000).
    #[arg(long, env = "QUOTA_MAX_CONNECTIONS", value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Threads serving connections, each with its own event loop and its own
    /// upstream connections (default: the number of CPUs).
    #[arg(long, env = "QUOTA_WORKERS", value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Terminate TLS with this certificate chain (PEM, the server's
    /// certificate first); needs --tls-key. Reloaded on SIGHUP and when the
    /// file changes.
    #[arg(long, env = "QUOTA_TLS_CERT", value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "QUOTA_TLS_KEY", value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Access log: one JSON line per request appended to this file, or `-`
    /// for stdout (default: none).
    #[arg(long, env = "QUOTA_ACCESS_LOG", value_name = "PATH|-")]
    pub(crate) access_log: Option<PathBuf>,
    /// Log format: text or json (default text).
    #[arg(long, env = "QUOTA_LOG_FORMAT", value_name = "FORMAT",
        value_parser = PossibleValuesParser::new(["text", "json"]).try_map(|s| s.parse::<LogFormat>()))]
    pub(crate) log_format: Option<LogFormat>,
    /// Config file (TOML) with the same keys as these flags.
    #[arg(long, env = "QUOTA_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Run a built-in mock upstream, create two demo accounts, and send some
    /// demo traffic (admitted and refused) for the operator's page.
    #[arg(long)]
    pub(crate) demo: bool,
}

impl ServeArgs {
    /// The flags given (or their environment variables): what beats the
    /// config file.
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            grpc_listen: self.grpc_listen.clone(),
            grpc_domain: self.grpc_domain.clone(),
            upstream: self.upstream.clone(),
            upstream_ca: self.upstream_ca.clone(),
            policy: self.policy.clone(),
            store: self.store.clone(),
            redis_prefix: self.redis_prefix.clone(),
            redis_failure: self.redis_failure.clone(),
            admin_token: self.admin_token.clone(),
            data_dir: self.data_dir.clone(),
            shadow: self.shadow,
            refund_on: self.refund_on.clone(),
            ietf_headers: self.ietf_headers,
            path_action: self.path_action.clone(),
            http1: self.http1.clone(),
            forward_credentials: self.forward_credentials,
            trusted_proxies: self.trusted_proxies.clone(),
            upstream_timeout: self.upstream_timeout,
            client_timeout: self.client_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_connections: self.max_connections,
            workers: self.workers,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            access_log: self.access_log.clone(),
            log_format: self.log_format,
            demo: self.demo,
        }
    }
}

/// Flags of `quota call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The URL to call (http only).
    pub(crate) url: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "QUOTA_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,
    /// Request body (the method becomes POST); `@FILE` reads it from a file.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        conflicts_with = "form"
    )]
    pub(crate) data: Option<String>,
    /// A multipart form field, `name=value` or `name=@PATH` for a file; repeatable.
    #[arg(short = 'F', long = "form", value_name = "NAME=VALUE|NAME=@PATH")]
    pub(crate) form: Vec<String>,
    /// The method (default GET, or POST with a body).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// An extra header, `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub(crate) headers: Vec<String>,
    /// Pace requests from the X-RateLimit headers so that no 429 is met.
    #[arg(long)]
    pub(crate) pace: bool,
    /// Send the request this many times in a row (pacing matters from the second one).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) repeat: u32,
    /// Print the response status and headers on stderr.
    #[arg(short = 'i', long = "include")]
    pub(crate) include: bool,
}

/// Flags of `quota simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Policy file; the seed policy when absent.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// CSV trace: `timestamp_ms,key,endpoint[,tier]`, in time order (a
    /// header line is allowed); see docs/sample-trace.csv.
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) trace: PathBuf,
    /// Tier of rows that name none (default: the policy's signup tier).
    #[arg(long)]
    pub(crate) tier: Option<String>,
    /// Draw each endpoint's requests per window of the policy, refusals by
    /// the limit that refused them, into this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    pub(crate) plot: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags of `quota policy`.
#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// What to do with the policy.
    #[command(subcommand)]
    pub(crate) action: PolicyAction,
}

/// Export formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyFormat {
    /// TOML.
    #[default]
    Toml,
    /// JSON.
    Json,
}

/// `quota policy` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyAction {
    /// Print the policy as readable tables.
    Show {
        /// Policy file; the seed policy when absent.
        file: Option<PathBuf>,
    },
    /// Check a policy file; errors name the line and column.
    Validate {
        /// Policy file.
        file: PathBuf,
    },
    /// Print the policy as TOML or JSON.
    Export {
        /// Policy file; the seed policy when absent.
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PolicyFormat::Toml)]
        format: PolicyFormat,
    },
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn access_log_flag_parses_and_takes_a_dash() {
        let cli = Cli::try_parse_from([
            "quota",
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--access-log",
            "-",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.access_log, Some(PathBuf::from("-")));
    }

    #[test]
    fn a_flag_becomes_an_override_and_the_log_format_is_checked() {
        let cli = Cli::try_parse_from(["quota", "serve", "--workers", "2", "--log-format", "json"])
            .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let o = args.overrides();
        assert_eq!((o.workers, o.log_format), (Some(2), Some(LogFormat::Json)));
        assert!(o.listen.is_none() && !o.demo);
        assert!(Cli::try_parse_from(["quota", "serve", "--log-format", "xml"]).is_err());
    }
}
