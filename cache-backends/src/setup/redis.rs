//! Redis URLs: one server, a cluster, a server behind Sentinel, or a unix socket — in our spellings and in
//! fred's.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cache_core::Backend;

use super::options::{take_bool, take_duration, take_parsed, take_string, Options};
use super::registry::{BackendSpec, Scheme, UrlParts};
use super::SetupError;

pub(crate) const SCHEME: Scheme = Scheme {
    names: &[
        "redis",
        "rediss",
        "redis+cluster",
        "rediss+cluster",
        "redis-cluster",
        "rediss-cluster",
        "redis+sentinel",
        "rediss+sentinel",
        "redis-sentinel",
        "rediss-sentinel",
        "redis+unix",
        "unix",
    ],
    feature: "redis",
    parse: if cfg!(feature = "redis") {
        Some(parse)
    } else {
        None
    },
};

/// A parsed Redis URL.
///
/// # Example
/// ```
/// let parsed = cache_backends::parse_url("redis-cluster://10.0.0.1:7000,10.0.0.2:7000?prefix=app:").unwrap();
/// let redis = parsed.spec::<cache_backends::RedisUrl>().unwrap();
/// assert!(redis.cluster);
/// assert_eq!(redis.hosts, ["10.0.0.1:7000", "10.0.0.2:7000"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisUrl {
    /// `rediss` schemes.
    pub tls: bool,
    /// Seed nodes (cluster), sentinel nodes (sentinel) or the one server, as `host:port`; empty for a unix
    /// socket.
    pub hosts: Vec<String>,
    /// `unix:///path/to/redis.sock`: the server's unix socket.
    pub unix_socket: Option<String>,
    /// Credentials, verbatim (still percent-encoded) as `user:password` or `password`.
    pub userinfo: Option<String>,
    /// Database number (not for clusters).
    pub database: Option<u8>,
    /// Cluster deployment.
    pub cluster: bool,
    /// Sentinel deployment: the service name.
    pub sentinel_service: Option<String>,
    /// `pool_size`
    pub pool_size: Option<usize>,
    /// `command_timeout`
    pub command_timeout: Option<Duration>,
    /// `connect_timeout`
    pub connect_timeout: Option<Duration>,
    /// `prefix`
    pub prefix: Option<String>,
    /// `clear_all`
    pub clear_all: bool,
    /// `breaker`
    pub breaker: bool,
    /// `breaker_failures`
    pub breaker_failures: Option<u32>,
    /// `breaker_cooldown`
    pub breaker_cooldown: Option<Duration>,
    /// `client_side=true`: a local copy kept consistent by client tracking (`ClientSideBackend`).
    pub client_side: bool,
    /// `local_ttl`: the longest a client-side copy is kept (default 60 s).
    pub local_ttl: Option<Duration>,
}

fn parse(url: &UrlParts<'_>, options: &mut Options) -> Result<Box<dyn BackendSpec>, SetupError> {
    let scheme = url.scheme;
    let tls = scheme.starts_with("rediss");
    let sentinel = scheme.ends_with("+sentinel") || scheme.ends_with("-sentinel");
    let unix = scheme == "unix" || scheme.ends_with("+unix");
    let cluster = scheme.ends_with("+cluster")
        || scheme.ends_with("-cluster")
        || take_bool(options, "cluster")?.unwrap_or(false);
    let (userinfo, hosts) = match url.authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user.to_owned()), hosts),
        None => (None, url.authority),
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    let db_option = take_parsed::<u8>(options, "db")?;
    let (unix_socket, database) = if unix {
        if !cfg!(unix) {
            return Err(url.invalid("unix sockets exist only on unix platforms"));
        }
        if !hosts.is_empty() || userinfo.is_some() {
            return Err(url.invalid(
                "a unix socket URL names only the socket's path: unix:///path/to/redis.sock",
            ));
        }
        if url.path.is_empty() {
            return Err(url.invalid("no socket path: unix:///path/to/redis.sock"));
        }
        if db_option.is_some_and(|db| db != 0) {
            return Err(
                url.invalid("databases other than 0 are not supported over unix sockets here")
            );
        }
        (Some(format!("/{}", url.path)), None)
    } else {
        if hosts.is_empty() {
            return Err(url.invalid("no host"));
        }
        let from_path = match url.path.trim_end_matches('/') {
            "" => None,
            db => Some(db.parse::<u8>().map_err(|_| {
                url.invalid("the path must be a database number, like redis://host:6379/2")
            })?),
        };
        let database = match (from_path, db_option) {
            (Some(a), Some(b)) if a != b => {
                return Err(url.invalid("the path and ?db= name different databases"))
            }
            (a, b) => a.or(b),
        };
        (None, database)
    };
    if cluster && sentinel {
        return Err(url.invalid("a deployment is either a cluster or behind sentinel"));
    }
    if cluster && database.unwrap_or(0) != 0 {
        return Err(url.invalid("Redis Cluster has only database 0"));
    }
    if hosts.len() > 1 && !cluster && !sentinel {
        return Err(
            url.invalid("several hosts need redis+cluster://, ?cluster=true or redis+sentinel://")
        );
    }
    let sentinel_service = take_string(options, "service_name");
    if sentinel && sentinel_service.is_none() {
        return Err(url.invalid("redis+sentinel:// needs ?service_name=<primary name>"));
    }
    if !sentinel && sentinel_service.is_some() {
        return Err(SetupError::UnknownOption {
            name: "service_name".into(),
            scheme: scheme.to_owned(),
        });
    }
    let client_side = take_bool(options, "client_side")?.unwrap_or(false);
    let local_ttl = take_duration(options, "local_ttl")?;
    if client_side && cluster {
        return Err(url.invalid(
            "client_side=true is not offered on Redis Cluster (tracking would have to be re-armed on every primary \
             across failovers); use a tiered cache with a backplane",
        ));
    }
    if local_ttl.is_some() && !client_side {
        return Err(url.invalid("local_ttl needs client_side=true"));
    }
    Ok(Box::new(RedisUrl {
        tls,
        hosts,
        unix_socket,
        userinfo,
        database,
        cluster,
        sentinel_service,
        pool_size: take_parsed::<usize>(options, "pool_size")?,
        command_timeout: take_duration(options, "command_timeout")?,
        connect_timeout: take_duration(options, "connect_timeout")?,
        prefix: take_string(options, "prefix"),
        clear_all: take_bool(options, "clear_all")?.unwrap_or(false),
        breaker: take_bool(options, "breaker")?.unwrap_or(true),
        breaker_failures: take_parsed::<u32>(options, "breaker_failures")?,
        breaker_cooldown: take_duration(options, "breaker_cooldown")?,
        client_side,
        local_ttl,
    }))
}

#[async_trait]
impl BackendSpec for RedisUrl {
    async fn connect(&self) -> Result<Arc<dyn Backend>, SetupError> {
        connect_redis(self).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(feature = "redis")]
async fn connect_redis(url: &RedisUrl) -> Result<Arc<dyn Backend>, SetupError> {
    let scheme = if url.tls { "rediss" } else { "redis" };
    let credentials = url
        .userinfo
        .as_deref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = url.database.map(|d| format!("/{d}")).unwrap_or_default();
    let mut builder = crate::RedisBackend::builder().cluster(url.cluster);
    if let Some(socket) = &url.unix_socket {
        builder = builder.url(format!("redis+unix://{socket}"));
    } else if let Some(service) = &url.sentinel_service {
        // fred's sentinel URL: the first sentinel in the authority, the others as `node` parameters.
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("sentinelServiceName", service);
        for host in url.hosts.iter().skip(1) {
            query.append_pair("node", host);
        }
        let first = url.hosts.first().map(String::as_str).unwrap_or_default();
        builder = builder.url(format!(
            "{scheme}-sentinel://{credentials}{first}{db}?{}",
            query.finish()
        ));
    } else {
        for host in &url.hosts {
            builder = builder.url(format!("{scheme}://{credentials}{host}{db}"));
        }
    }
    if let Some(n) = url.pool_size {
        builder = builder.pool_size(n);
    }
    if let Some(t) = url.command_timeout {
        builder = builder.command_timeout(t);
    }
    if let Some(t) = url.connect_timeout {
        builder = builder.connect_timeout(t);
    }
    if let Some(prefix) = &url.prefix {
        builder = builder.key_prefix(prefix.clone());
    }
    let builder = builder.clear_all(url.clear_all);
    let redis: Arc<dyn Backend> = if url.client_side {
        let mut options = crate::ClientSideOptions::default();
        if let Some(ttl) = url.local_ttl {
            options.local_ttl = ttl;
        }
        crate::ClientSideBackend::connect(builder, options).await?
    } else {
        Arc::new(builder.build().await?)
    };
    if !url.breaker {
        return Ok(redis);
    }
    let mut breaker = crate::Breaker::builder();
    if let Some(n) = url.breaker_failures {
        breaker = breaker.failure_threshold(n);
    }
    if let Some(d) = url.breaker_cooldown {
        breaker = breaker.cooldown(d);
    }
    Ok(Arc::new(breaker.wrap(redis)))
}

#[cfg(not(feature = "redis"))]
async fn connect_redis(_url: &RedisUrl) -> Result<Arc<dyn Backend>, SetupError> {
    Err(SetupError::FeatureDisabled {
        feature: "redis",
        what: "redis:// URLs",
    })
}
