//! The connection: one managed, multiplexed connection (reconnects by
//! itself), every call bounded by a timeout, errors mapped to
//! [`StoreError`].

use core::future::Future;
use core::time::Duration;

use quota_core::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, RedisError, ServerErrorKind};

use crate::{Error, RedisConfig};

/// A cheap-to-clone handle on the managed connection.
#[derive(Clone)]
pub(crate) struct Conn {
    manager: ConnectionManager,
    timeout: Duration,
}

impl core::fmt::Debug for Conn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conn")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Builds the connection lazily: nothing is dialled until the first call,
    /// so this never blocks. Fails outside a Tokio runtime.
    pub(crate) fn lazy(url: &str, config: &RedisConfig) -> Result<Self, Error> {
        // The manager spawns a task at once: outside a runtime that would panic.
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let client = redis::Client::open(url).map_err(|e| Error::InvalidUrl(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.timeout))
            // A failed dial is retried by the next call (each call triggers a
            // reconnect after an I/O error), not by a backoff loop that could
            // keep the connection away for seconds after Redis returns.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| Error::InvalidUrl(e.to_string()))?;
        Ok(Conn {
            manager,
            timeout: config.timeout,
        })
    }

    /// The bound on every call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut m = self.manager.clone();
        self.bounded(self.timeout, async move { cmd.query_async(&mut m).await })
            .await
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT).
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut m = self.manager.clone();
        self.bounded(self.timeout, async move { inv.invoke_async(&mut m).await })
            .await
    }

    /// Checks that Redis answers, waiting at most `limit`.
    pub(crate) async fn ping(&self, limit: Duration) -> Result<(), StoreError> {
        let mut m = self.manager.clone();
        let pong: String = self
            .bounded(limit, async move {
                redis::cmd("PING").query_async(&mut m).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::protocol(format!(
                "unexpected answer to PING: {pong:?}"
            )))
        }
    }

    /// Loads a script so the first decision needs no NOSCRIPT round trip.
    pub(crate) async fn load(
        &self,
        script: &redis::Script,
        limit: Duration,
    ) -> Result<(), StoreError> {
        let mut m = self.manager.clone();
        self.bounded(limit, async move { script.load_async(&mut m).await })
            .await
            .map(drop)
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(e, limit)),
            Err(elapsed) => Err(StoreError::timeout(millis(limit)).with_source(elapsed)),
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Connection trouble is `Unavailable` or `Timeout` (the failure policy
/// applies); anything else Redis says is `Protocol` (a bug or a
/// misconfiguration, such as an ACL that forbids scripts: never hidden).
/// The Redis error is kept as the source.
pub(crate) fn map_error(e: RedisError, limit: Duration) -> StoreError {
    if e.is_timeout() {
        return StoreError::timeout(millis(limit)).with_source(e);
    }
    let unavailable = e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    let error = if unavailable {
        StoreError::unavailable(e.to_string())
    } else {
        StoreError::protocol(e.to_string())
    };
    error.with_source(e)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_mapped_error_keeps_the_redis_error_and_says_whether_it_is_transient() {
        let limit = Duration::from_millis(250);
        let refused = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        let shown = refused.to_string();
        let e = map_error(refused, limit);
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("store unavailable: {shown}"));
        assert!(e.is_transient());
        assert!(e
            .source()
            .is_some_and(|s| s.downcast_ref::<RedisError>().is_some()));

        let refused_script = RedisError::from((ErrorKind::Client, "scripts are forbidden"));
        let e = map_error(refused_script, limit);
        assert!(matches!(e, StoreError::Protocol { .. }), "{e:?}");
        assert!(!e.is_transient());
        assert!(e.source().is_some());
    }
}
