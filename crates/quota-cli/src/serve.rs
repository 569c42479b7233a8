//! `quota serve`: configures the gateway library (`quota-gateway`) from the
//! settings, watches the policy file, and serves until SIGINT or SIGTERM.

use quota_gateway::accounts::RedbAccounts;
use quota_gateway::backend::{GatewayAccounts, GatewayStore};
use quota_gateway::reload::Reloadable;
use quota_gateway::{demo, ids, shutdown_signal, AccessLog, Gateway, TlsConfig};
use tokio::net::TcpListener;

use crate::config::{Settings, StoreSetting};
use quota_gateway::policy_file;

/// Runs `quota serve` until SIGINT or SIGTERM.
pub(crate) async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let policy = policy_file::load_or_seed(settings.policy.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut demo_dir = None;
    if settings.demo && !settings.data_dir_given {
        let dir = std::env::temp_dir().join(format!("quota-demo-{}", std::process::id()));
        demo_dir = Some(dir.clone());
        settings.data_dir = dir;
    }
    let mut demo_upstream = None;
    if settings.demo {
        let addr = demo::start_mock_upstream().await?;
        demo_upstream = Some(addr);
        if settings.upstream.is_none() && settings.routes.is_empty() {
            settings.upstream = Some(format!("http://{addr}").parse()?);
        }
        if settings.admin_token.is_none() {
            settings.admin_token = Some(ids::new_api_key().replacen("qk_", "admin_", 1));
        }
    }
    // Listen first: a gateway that cannot listen creates no database.
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let (store, accounts) = open_backends(&settings).await?;

    let mut builder = Gateway::builder(policy)
        .store(store)
        .accounts(accounts)
        .shadow(settings.shadow)
        .refund_on(settings.refund_on)
        .ietf_headers(settings.ietf_headers)
        .path_action(settings.path_action)
        .forward_credentials(settings.forward_credentials)
        .trusted_proxies(settings.trusted_proxies.clone())
        .upstream_timeout(settings.upstream_timeout)
        .client_timeout(settings.client_timeout)
        .shutdown_timeout(settings.shutdown_timeout)
        .max_connections(settings.max_connections)
        .workers(settings.workers)
        .http1(settings.http1);
    if let Some(upstream) = &settings.upstream {
        builder = builder.upstream(upstream.clone());
    }
    for route in &settings.routes {
        builder = builder.route(route.clone());
    }
    if let Some(token) = &settings.admin_token {
        builder = builder.admin_token(token.clone());
    }
    if let Some(ca) = &settings.upstream_ca {
        builder = builder.upstream_ca(ca.clone());
    }
    if let Some(files) = &settings.tls {
        let tls = TlsConfig::from_pem_files(&files.cert, &files.key)
            .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?;
        builder = builder.tls(tls);
    }
    if let Some(target) = &settings.access_log {
        builder = builder.access_log(AccessLog::open(target)?);
    }
    let gateway = builder.build()?;

    let _watcher = crate::watch::spawn(Reloadable {
        policy: settings
            .policy
            .clone()
            .map(|path| (path, gateway.reloader())),
        tls: gateway.tls().cloned(),
    })?;

    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        routes = %gateway.routes().iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        policy = %settings.policy.as_ref().map_or("built-in seed".to_owned(), |p| p.display().to_string()),
        store = gateway.store().backend(),
        accounts = gateway.accounts().backend(),
        shadow = settings.shadow,
        refund_on = %settings.refund_on,
        admin_api = settings.admin_token.is_some(),
        trusted_proxies = %settings.trusted_proxies,
        http1 = %settings.http1,
        tls = settings.tls.is_some(),
        access_log = %settings.access_log.as_ref().map_or("none".to_owned(), |p| p.display().to_string()),
        "quota gateway started"
    );
    if let Some(up) = demo_upstream {
        let accounts = demo::create_accounts(&gateway).await?;
        let token = settings.admin_token.as_deref().unwrap_or("");
        print!("{}", demo::banner(local, up, token, &accounts));
    }
    // Envoy's rate limit service, stopped with the gateway.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let grpc = match settings.grpc_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--grpc-listen): {e}"))?;
            let local = listener.local_addr()?;
            let rls = gateway.rls(&settings.grpc_domain);
            tracing::info!(grpc_listen = %local, domain = %settings.grpc_domain, "envoy rate limit service started");
            println!("quota: rate limit service (gRPC) on {local}");
            let mut stopped = stopped.clone();
            Some(tokio::spawn(rls.serve(listener, async move {
                let _ = stopped.changed().await;
            })))
        }
        None => None,
    };
    drop(stopped);
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("quota: listening on {scheme}://{local}");
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }

    gateway.serve(listener, shutdown_signal()).await?;
    drop(stop);
    if let Some(grpc) = grpc {
        grpc.await??;
    }
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    tracing::info!("quota gateway stopped");
    Ok(())
}

async fn open_backends(settings: &Settings) -> anyhow::Result<(GatewayStore, GatewayAccounts)> {
    match &settings.store {
        StoreSetting::Memory => {
            let accounts = RedbAccounts::open(&settings.data_dir)?;
            tracing::info!(db = %accounts.path().display(), accounts = accounts.count().unwrap_or(0), "accounts database open");
            Ok((quota_core::MemoryStore::new().into(), accounts.into()))
        }
        StoreSetting::Redis(url) => {
            let mut config =
                quota_redis::RedisConfig::default().with_failure_policy(settings.redis_failure);
            if let Some(prefix) = &settings.redis_prefix {
                config = config.with_prefix(prefix.clone());
            }
            let store = quota_redis::RedisStore::connect(url, config)
                .await
                .map_err(|e| anyhow::anyhow!("--store {}: {e}", redacted(url)))?;
            let (health, redis) = (store.health(), redacted(url));
            let (prefix, policy) = (store.keys().prefix(), health.failure_policy);
            if health.redis_ok {
                tracing::info!(%redis, prefix, failure_policy = %policy, "redis store connected");
            } else {
                tracing::warn!(%redis, prefix, failure_policy = %policy, "redis does not answer yet; until it does, requests follow the failure policy");
            }
            let accounts = store.accounts();
            Ok((store.into(), accounts.into()))
        }
    }
}

/// A Redis URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
