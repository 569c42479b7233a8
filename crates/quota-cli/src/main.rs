//! `quota`: a rate-limiting API gateway and the tools around it.
//!
//! - `quota serve`: the gateway (reverse proxy, enforcement, admin API,
//!   `/v1/limits`, `/healthz`, `/metrics`, policy reload, graceful shutdown);
//!   `quota serve --demo` runs it in front of a built-in mock upstream.
//! - `quota call`: a curl-like client that retries 429s (waits through a
//!   minute limit, gives up on a daily one).
//! - `quota simulate`: replays a CSV trace through a policy offline.
//! - `quota policy show|validate|export`: look at and check policy files.
//!
//! See `docs/gateway.md`.

mod call;
mod cli;
mod plot;
mod policy_cmd;
mod serve;
mod simulate;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use quota_gateway::settings::{LogFormat, Settings};

/// mimalloc: the gateway allocates and frees small blocks on every request,
/// across worker threads; glibc's malloc spent about 5% of its CPU there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let code = match Cli::parse().command {
        Command::Serve(args) => serve_main(&args),
        Command::Call(args) => runtime(true).map_or_else(fail, |rt| rt.block_on(call::run(&args))),
        Command::Simulate(args) => simulate::run(&args).map_or_else(fail, |()| 0),
        Command::Policy(args) => policy_cmd::run(&args.action),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn fail(e: impl Into<anyhow::Error>) -> i32 {
    eprintln!("quota: {:#}", e.into());
    1
}

/// A Tokio runtime: on worker threads, or on this one.
fn runtime(threads: bool) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        true => tokio::runtime::Builder::new_multi_thread(),
        false => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
}

fn serve_main(args: &cli::ServeArgs) -> i32 {
    let settings = match Settings::resolve(args.config.as_deref(), &args.overrides()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quota serve: {e}");
            return 2;
        }
    };
    let log_format = settings.log_format;
    init_tracing(log_format);
    // The first worker runs on this thread; `serve` starts the others, each
    // on a single-threaded runtime of its own.
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    match rt.block_on(serve::run(settings)) {
        Ok(()) => 0,
        // Said once: a log line where logs are JSON, else a plain message.
        Err(e) if log_format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "quota serve failed");
            1
        }
        Err(e) => {
            eprintln!("quota serve: {e:#}");
            1
        }
    }
}

fn init_tracing(format: LogFormat) {
    // rustls logs a client's protocol quirks (an IP address sent as SNI, as
    // wrk does) at warn, once per connection: a client could fill the log.
    // Its errors stay; RUST_LOG chooses otherwise.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        _ => builder.try_init(),
    };
}
