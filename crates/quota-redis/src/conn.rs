//! The connection: to one Redis, one managed, multiplexed connection
//! (reconnects by itself); to a Redis Cluster (`redis+cluster://` URLs),
//! redis-rs's async cluster connection (one multiplexed connection per node,
//! commands routed by the slot of their keys, `MOVED`/`ASK` followed, the slot
//! map refreshed). Every call bounded by a timeout, errors mapped to
//! [`StoreError`].

use core::future::Future;
use core::time::Duration;

use quota_core::StoreError;
use redis::aio::{ConnectionLike as _, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, FromRedisValue, RedisError, RedisFuture, ServerErrorKind};

use crate::{Error, RedisConfig};

/// The scheme of a Redis Cluster URL.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A cheap-to-clone handle on the managed connection.
#[derive(Clone)]
pub(crate) struct Conn {
    manager: Link,
    timeout: Duration,
}

/// One Redis or a cluster: both are `ConnectionLike`, so every command and
/// script goes through the same code.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Link::Single(m) => m.req_packed_command(cmd),
            Link::Cluster(c) => Box::pin(redirected(c, cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Link::Single(m) => m.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(m) => m.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Redirections followed for one command before giving up.
const MAX_REDIRECTS: usize = 5;

/// Sends `cmd` to the cluster, following the redirections that say the
/// command did not run: `MOVED` (the slot lives elsewhere now; the client
/// also refreshes its slot map), `ASK` (the slot is migrating and the keys
/// are on the target: `ASKING` then the command, there) and `TRYAGAIN` (the
/// keys of a multi-key command are split by a migration in progress).
///
/// The client itself retries nothing (`retries(0)`): it would also resend a
/// command whose connection broke after Redis ran it, counting a decision
/// or a charge twice. Connection errors are returned as they are, to the
/// failure policy.
///
/// `SCRIPT LOAD` goes to every node the client knows, masters and replicas
/// (so a replica promoted by a failover has the scripts already), waits for
/// all of them, and succeeds when one node loaded it: a node that is down (a
/// master just killed, still in the slot map) must not keep the script from
/// the others.
/// A node without the script answers the next call `NOSCRIPT`, which loads
/// it again.
async fn redirected(
    c: &mut ClusterConnection,
    cmd: &redis::Cmd,
) -> redis::RedisResult<redis::Value> {
    use redis::cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
    };
    if is_script_load(cmd) {
        let everywhere = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllNodes,
            Some(ResponsePolicy::FirstSucceededNonEmptyOrAllEmpty),
        ));
        return c.route_command(cmd.clone(), everywhere).await;
    }
    let mut result = c.req_packed_command(cmd).await;
    for _ in 0..MAX_REDIRECTS {
        let err = match &result {
            Err(e) => e,
            Ok(_) => break,
        };
        let to = || {
            err.redirect_node().and_then(|(addr, _)| {
                let (host, port) = addr.rsplit_once(':')?;
                Some(SingleNodeRoutingInfo::ByAddress {
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port: port.parse().ok()?,
                })
            })
        };
        result = match err.kind() {
            ErrorKind::Server(ServerErrorKind::Moved) => match to() {
                Some(node) => {
                    c.route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                        .await
                }
                None => break,
            },
            ErrorKind::Server(ServerErrorKind::Ask) => match to() {
                Some(node) => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("ASKING").add_command(cmd.clone());
                    c.route_pipeline(pipe, 1, 1, node)
                        .await
                        .and_then(|mut values| match values.pop() {
                            Some(v) => v.extract_error(),
                            None => Err(RedisError::from((
                                ErrorKind::Client,
                                "no reply after ASKING",
                            ))),
                        })
                }
                None => break,
            },
            ErrorKind::Server(ServerErrorKind::TryAgain) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                c.req_packed_command(cmd).await
            }
            _ => break,
        };
    }
    result
}

/// Makes the cluster client read the slot map again. redis-rs has no call
/// for it; it does so after a command for a node it has no connection to
/// (`ClusterConnectionNotFound`: it reconnects to the nodes of the URL and
/// reads the slot map). So: a `PING` for an address no node has.
async fn refresh_slots(c: &mut ClusterConnection) {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let nowhere = SingleNodeRoutingInfo::ByAddress {
        host: "quota-redis.refresh-slots.invalid".to_owned(),
        port: 1,
    };
    let _ = c
        .route_command(redis::cmd("PING"), RoutingInfo::SingleNode(nowhere))
        .await;
}

/// Whether `cmd` is `SCRIPT LOAD`.
fn is_script_load(cmd: &redis::Cmd) -> bool {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(a) => a,
        _ => b"",
    });
    matches!(
        (args.next(), args.next()),
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b"SCRIPT") && b.eq_ignore_ascii_case(b"LOAD")
    )
}

impl core::fmt::Debug for Conn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conn")
            .field("cluster", &self.is_cluster())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The node URLs of a `redis+cluster://[user:password@]host:port[,host:port...]`
/// URL (`redis://[user:password@]host:port` each), or `None` for any other URL.
///
/// # Errors
/// [`Error::InvalidUrl`] for no node, an empty node, or a database number
/// (a cluster has only database 0). The message never shows the password.
pub(crate) fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, Error>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let bad = |why: &str| {
        Some(Err(Error::InvalidUrl(format!(
            "{CLUSTER_SCHEME} URL: {why} (expected {CLUSTER_SCHEME}[user:password@]host:port[,host:port...])"
        ))))
    };
    let (auth, hosts) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let hosts = hosts.strip_suffix("/0").unwrap_or(hosts);
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.contains(['/', '?', '#']) {
        return bad("a path, a database number or a query (a cluster has only database 0)");
    }
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return bad("an empty node");
        }
        nodes.push(format!("redis://{auth}{host}"));
    }
    Some(Ok(nodes))
}

impl Conn {
    /// Builds the connection lazily: nothing is dialled until the first call,
    /// so this never blocks. Fails outside a Tokio runtime.
    pub(crate) fn lazy(url: &str, config: &RedisConfig) -> Result<Self, Error> {
        // The manager spawns a task at once: outside a runtime that would panic.
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if let Some(nodes) = cluster_nodes(url) {
            return Self::cluster(&nodes?, config);
        }
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
            manager: Link::Single(manager),
            timeout: config.timeout,
        })
    }

    /// A pending cluster connection: it dials the nodes, reads the slot map
    /// in the background, and follows `MOVED` (refreshing the map) and `ASK`.
    fn cluster(nodes: &[String], config: &RedisConfig) -> Result<Self, Error> {
        let client = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.timeout)
            // No retries: `redirected` follows the redirections, which are
            // safe to follow, and nothing else is resent (see there).
            .retries(0)
            .build()
            .map_err(|e| Error::InvalidUrl(e.to_string()))?;
        let cluster = client.get_pending_async_connection_with_config(
            redis::cluster::ClusterConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.timeout),
        );
        Ok(Conn {
            manager: Link::Cluster(cluster),
            timeout: config.timeout,
        })
    }

    /// Whether this is a Redis Cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.manager, Link::Cluster(_))
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
    ///
    /// On a cluster, `PING` goes to every master of the client's slot map;
    /// when it fails, the client is told to read the slot map again, so that
    /// a store that only pings (a gateway's `/healthz` with no traffic)
    /// learns of a replica promoted in a failover instead of pinging the
    /// dead master forever.
    pub(crate) async fn ping(&self, limit: Duration) -> Result<(), StoreError> {
        let mut m = self.manager.clone();
        let pong: Result<String, StoreError> = self
            .bounded(limit, async move {
                redis::cmd("PING").query_async(&mut m).await
            })
            .await;
        if let (Err(_), Link::Cluster(c)) = (&pong, &self.manager) {
            let mut c = c.clone();
            let _ = tokio::time::timeout(limit, refresh_slots(&mut c)).await;
        }
        let pong = pong?;
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

    #[test]
    fn script_load_is_recognised_whatever_its_case() {
        assert!(is_script_load(
            redis::cmd("SCRIPT").arg("LOAD").arg("return 1")
        ));
        assert!(is_script_load(
            redis::cmd("script").arg("load").arg("return 1")
        ));
        assert!(!is_script_load(redis::cmd("SCRIPT").arg("FLUSH")));
        assert!(!is_script_load(&redis::cmd("PING")));
    }

    #[test]
    fn cluster_urls_name_every_node_and_keep_the_password_out_of_errors() {
        assert!(cluster_nodes("redis://127.0.0.1:6379").is_none());
        assert_eq!(
            cluster_nodes("redis+cluster://127.0.0.1:7101,127.0.0.1:7102"),
            Some(Ok(vec![
                "redis://127.0.0.1:7101".to_owned(),
                "redis://127.0.0.1:7102".to_owned()
            ]))
        );
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@w@h:1, h:2/"),
            Some(Ok(vec![
                "redis://u:p@w@h:1".to_owned(),
                "redis://u:p@w@h:2".to_owned()
            ]))
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h:1,,h:2",
            "redis+cluster://:secret@h:1/3",
            "redis+cluster://h:1?x=1",
        ] {
            match cluster_nodes(bad) {
                Some(Err(Error::InvalidUrl(m))) => assert!(!m.contains("secret"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
