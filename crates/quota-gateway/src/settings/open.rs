//! From settings to a [`GatewayBuilder`]: the policy loaded, the store and
//! the accounts opened, the certificate and the access log ready.

use quota_core::policy::Policy;

use super::values::redacted;
use super::{Settings, SettingsError, StoreSetting};
use crate::backend::{GatewayAccounts, GatewayStore};
use crate::gateway::{Gateway, GatewayBuilder};
use crate::{policy_file, AccessLog, TlsConfig};

impl Settings {
    /// The gateway these settings describe, to build (or to change
    /// further first): the policy file loaded (the seed without one), the
    /// store and the accounts opened (Redis: connected, with
    /// `redis_prefix` and `redis_failure`; memory: the accounts in a
    /// database under [`data_dir`](Settings::data_dir) with the feature
    /// `redb`, else in memory), the TLS certificate and the access log
    /// opened, and every other setting passed on.
    ///
    /// # Errors
    /// [`SettingsError::Policy`] for a policy file that cannot be used,
    /// [`SettingsError::Open`] when the store, the accounts database, the
    /// certificate or the access log cannot be opened.
    pub async fn gateway_builder(&self) -> Result<GatewayBuilder, SettingsError> {
        let policy = policy_file::load_or_seed(self.policy.as_deref())?;
        self.gateway_builder_with(policy).await
    }

    /// As [`gateway_builder`](Self::gateway_builder), with this policy
    /// instead of the `policy` file's (one made in code, say).
    ///
    /// # Errors
    /// As [`gateway_builder`](Self::gateway_builder), but for the policy.
    pub async fn gateway_builder_with(
        &self,
        policy: Policy,
    ) -> Result<GatewayBuilder, SettingsError> {
        let (store, accounts) = self.open_backends().await?;
        let mut builder = Gateway::builder(policy)
            .store(store)
            .accounts(accounts)
            .shadow(self.shadow)
            .refund_on(self.refund_on)
            .ietf_headers(self.ietf_headers)
            .path_action(self.path_action)
            .forward_credentials(self.forward_credentials)
            .trusted_proxies(self.trusted_proxies.clone())
            .upstream_timeout(self.upstream_timeout)
            .client_timeout(self.client_timeout)
            .shutdown_timeout(self.shutdown_timeout)
            .max_connections(self.max_connections)
            .workers(self.workers)
            .http1(self.http1);
        if let Some(upstream) = &self.upstream {
            builder = builder.upstream(upstream.clone());
        }
        for route in &self.routes {
            builder = builder.route(route.clone());
        }
        if let Some(token) = &self.admin_token {
            builder = builder.admin_token(token.clone());
        }
        if let Some(ca) = &self.upstream_ca {
            builder = builder.upstream_ca(ca.clone());
        }
        if let Some(files) = &self.tls {
            let tls = TlsConfig::from_pem_files(&files.cert, &files.key)
                .map_err(|e| SettingsError::Open(format!("--tls-cert/--tls-key: {e}")))?;
            builder = builder.tls(tls);
        }
        if let Some(target) = &self.access_log {
            let log = AccessLog::open(target).map_err(|e| SettingsError::Open(e.to_string()))?;
            builder = builder.access_log(log);
        }
        Ok(builder)
    }

    /// The store and the accounts: both in Redis, or counters in memory
    /// and the accounts on disk (feature `redb`) or in memory.
    async fn open_backends(&self) -> Result<(GatewayStore, GatewayAccounts), SettingsError> {
        match &self.store {
            StoreSetting::Memory => Ok((
                quota_core::MemoryStore::new().into(),
                self.local_accounts()?,
            )),
            StoreSetting::Redis(url) => {
                let mut config =
                    quota_redis::RedisConfig::default().with_failure_policy(self.redis_failure);
                if let Some(prefix) = &self.redis_prefix {
                    config = config.with_prefix(prefix.clone());
                }
                let redis = redacted(url);
                let store = quota_redis::RedisStore::connect(url, config)
                    .await
                    .map_err(|e| SettingsError::Open(format!("--store {redis}: {e}")))?;
                let health = store.health();
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

    /// The accounts beside a memory store: a database under `data_dir`.
    #[cfg(feature = "redb")]
    fn local_accounts(&self) -> Result<GatewayAccounts, SettingsError> {
        let accounts = crate::accounts::RedbAccounts::open(self.data_dir())
            .map_err(|e| SettingsError::Open(e.to_string()))?;
        tracing::info!(db = %accounts.path().display(), accounts = accounts.count().unwrap_or(0), "accounts database open");
        Ok(accounts.into())
    }

    /// The accounts beside a memory store: in memory (without the feature
    /// `redb`, `data_dir` is not used).
    #[cfg(not(feature = "redb"))]
    fn local_accounts(&self) -> Result<GatewayAccounts, SettingsError> {
        Ok(quota_core::account::MemoryAccounts::new().into())
    }
}
