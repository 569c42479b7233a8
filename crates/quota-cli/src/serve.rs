//! `quota serve`: runs the gateway the settings describe (the library's
//! `quota_gateway::settings`), watches the policy and certificate files,
//! and serves until SIGINT or SIGTERM; `--demo` adds a mock upstream, demo
//! accounts and demo traffic (`quota_gateway::demo`).

use quota_gateway::demo::traffic::DemoTraffic;
use quota_gateway::reload::Reloadable;
use quota_gateway::settings::Settings;
use quota_gateway::{demo, ids, shutdown_signal};
use tokio::net::TcpListener;

/// Runs `quota serve` until SIGINT or SIGTERM.
pub(crate) async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let mut demo_dir = None;
    if settings.demo && settings.data_dir.is_none() {
        let dir = std::env::temp_dir().join(format!("quota-demo-{}", std::process::id()));
        demo_dir = Some(dir.clone());
        settings.data_dir = Some(dir);
    }
    let mut demo_upstream = None;
    // Demo traffic only to the demo's own upstream.
    let demo_traffic = settings.demo && settings.upstream.is_none() && settings.routes.is_empty();
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
    let gateway = settings.gateway_builder().await?.build()?;

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
    // Demo traffic runs until the shutdown signal (or this function's end).
    let mut traffic = None;
    if let Some(up) = demo_upstream {
        let accounts = demo::create_accounts(&gateway).await?;
        if demo_traffic {
            traffic =
                Some(DemoTraffic::start(&gateway, local, &accounts, shutdown_signal()).await?);
        }
        let token = settings.admin_token.as_deref().unwrap_or("");
        print!(
            "{}",
            demo::banner(local, up, token, &accounts, traffic.as_ref())
        );
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
