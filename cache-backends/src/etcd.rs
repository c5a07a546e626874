//! etcd v3 as a cache backend (feature `etcd`, scheme `etcd://host:port`), as oslo.cache's `etcd3gw` backend uses
//! it: values under a key prefix, TTLs through leases.
//!
//! The client speaks etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`, `/v3/kv/deleterange`,
//! `/v3/lease/grant`) over HTTP/1.1 with hyper. That needs no `protoc` at build time and no gRPC stack (the
//! `etcd-client` crate needs both), for the handful of calls a cache makes.
//!
//! TTLs: one lease per TTL bucket, not per key. A key stored for `ttl` joins a lease granted for `ttl` plus a
//! slack of a tenth of it (at least a second) while that lease is younger than the slack; etcd drops the key
//! between `ttl` and `ttl + slack` later, and the value's envelope already reads as expired at `ttl`.
//!
//! Pattern operations: `delete_match`/`scan` take prefix patterns (`user:*`, which is what `_invalidate_all` and
//! `clear` use); any other glob is the typed capability error — etcd has no server-side glob.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use cache_core::{Backend, BackendError, Capabilities, SetMode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The etcd backend. Build it with [`EtcdBackend::builder`] or from an `etcd://` URL through `setup`.
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// let backend = cache_backends::EtcdBackend::builder()
///     .endpoint("http://127.0.0.1:2379")
///     .prefix("myapp/cache/")
///     .build();
/// let cache = cache_core::Cache::builder().backend(backend).build();
/// # let _ = cache;
/// # }
/// ```
pub struct EtcdBackend {
    endpoint: String,
    prefix: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Live leases by TTL in seconds: (lease id, when granted).
    leases: Mutex<HashMap<u64, (String, Instant)>>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Builder of an [`EtcdBackend`].
///
/// # Example
/// ```
/// let backend = cache_backends::EtcdBackend::builder()
///     .endpoint("http://127.0.0.1:2379")
///     .command_timeout(std::time::Duration::from_millis(300))
///     .build();
/// # let _ = backend;
/// ```
#[derive(Debug, Clone)]
pub struct EtcdBackendBuilder {
    endpoint: String,
    prefix: String,
    timeout: Duration,
}

impl EtcdBackend {
    /// A builder: endpoint `http://127.0.0.1:2379`, prefix `cache/`, 500 ms per command.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::EtcdBackend::builder();
    /// # let _ = builder;
    /// ```
    pub fn builder() -> EtcdBackendBuilder {
        EtcdBackendBuilder {
            endpoint: "http://127.0.0.1:2379".to_owned(),
            prefix: "cache/".to_owned(),
            timeout: Duration::from_millis(500),
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, BackendError> {
        let request = hyper::Request::post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| BackendError::Connection(e.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| BackendError::Connection(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(BackendError::Other(format!(
                    "etcd answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| BackendError::Other(format!("etcd sent unreadable JSON: {e}")))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?
    }

    /// The lease for a TTL, granting a new one when the bucket's lease is older than its slack.
    async fn lease_for(&self, ttl: Duration) -> Result<String, BackendError> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let secs = secs.max(1);
        let slack = (secs / 10).max(1);
        if let Some((id, granted)) = self.leases.lock().get(&secs)
            && granted.elapsed() < Duration::from_secs(slack)
        {
            return Ok(id.clone());
        }
        let granted = self
            .call(
                "/v3/lease/grant",
                json!({ "TTL": (secs + slack).to_string() }),
            )
            .await?;
        let id = granted
            .get("ID")
            .and_then(int_field)
            .ok_or_else(|| BackendError::Other(format!("etcd granted no lease id: {granted}")))?
            .to_string();
        self.leases
            .lock()
            .insert(secs, (id.clone(), Instant::now()));
        Ok(id)
    }

    /// The key range of a prefix pattern (`user:*`), or the capability error for any other glob.
    fn prefix_range(&self, pattern: &str) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let literal = pattern.strip_suffix('*').unwrap_or(pattern);
        let is_prefix = pattern.ends_with('*') && !literal.contains(['*', '?', '[', ']', '\\']);
        if !is_prefix {
            return Err(BackendError::Unsupported {
                backend: "etcd",
                capability: Capabilities::SCAN,
            });
        }
        let start = self.full_key(literal).into_bytes();
        Ok((start.clone(), range_end(&start)))
    }
}

impl EtcdBackendBuilder {
    /// The gateway's address, `http://host:port`.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::EtcdBackend::builder().endpoint("http://10.0.0.5:2379");
    /// # let _ = builder;
    /// ```
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_owned();
        self
    }

    /// The prefix every key is stored under (default `cache/`).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::EtcdBackend::builder().prefix("app1/");
    /// # let _ = builder;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one command may take (default 500 ms).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::EtcdBackend::builder().command_timeout(std::time::Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The backend. Connects lazily: an unreachable etcd fails each command, it does not fail the build.
    ///
    /// # Example
    /// ```
    /// let backend = cache_backends::EtcdBackend::builder().build();
    /// # let _ = backend;
    /// ```
    pub fn build(self) -> EtcdBackend {
        EtcdBackend {
            endpoint: self.endpoint,
            prefix: self.prefix,
            timeout: self.timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
            leases: Mutex::new(HashMap::new()),
        }
    }
}

/// etcd's JSON gateway writes 64-bit integers as strings.
fn int_field(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}

/// The end of the key range holding every key that starts with `prefix` (etcd's `range_end`).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: no upper bound.
    vec![0]
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let reply = self
            .call(
                "/v3/kv/range",
                json!({ "key": b64(self.full_key(key).as_bytes()) }),
            )
            .await?;
        let Some(value) = reply
            .get("kvs")
            .and_then(|kvs| kvs.get(0))
            .map(|kv| kv.get("value").and_then(Value::as_str).unwrap_or_default())
        else {
            return Ok(None);
        };
        B64.decode(value)
            .map(|bytes| Some(Bytes::from(bytes)))
            .map_err(|e| BackendError::Other(format!("etcd value is not base64: {e}")))
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let mut put = json!({ "key": b64(self.full_key(key).as_bytes()), "value": b64(&value) });
        if let Some(ttl) = ttl {
            put["lease"] = Value::String(self.lease_for(ttl).await?);
        }
        let condition = match mode {
            SetMode::Always => {
                self.call("/v3/kv/put", put).await?;
                return Ok(true);
            }
            SetMode::IfAbsent => "EQUAL",
            SetMode::IfPresent => "GREATER",
            other => {
                return Err(BackendError::Invalid(format!(
                    "the etcd backend does not know the write mode {other:?}"
                )))
            }
        };
        let reply = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{
                        "key": b64(self.full_key(key).as_bytes()),
                        "target": "CREATE",
                        "result": condition,
                        "create_revision": "0",
                    }],
                    "success": [{ "request_put": put }],
                }),
            )
            .await?;
        // The gateway leaves out `false` fields.
        Ok(reply
            .get("succeeded")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let reply = self
            .call(
                "/v3/kv/deleterange",
                json!({ "key": b64(self.full_key(key).as_bytes()) }),
            )
            .await?;
        Ok(reply.get("deleted").and_then(int_field).unwrap_or(0) > 0)
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let (start, end) = self.prefix_range(pattern)?;
        let reply = self
            .call(
                "/v3/kv/deleterange",
                json!({ "key": b64(&start), "range_end": b64(&end) }),
            )
            .await?;
        Ok(reply
            .get("deleted")
            .and_then(int_field)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0))
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let (start, end) = self.prefix_range(pattern)?;
        let reply = self
            .call(
                "/v3/kv/range",
                json!({ "key": b64(&start), "range_end": b64(&end), "keys_only": true }),
            )
            .await?;
        let mut keys = Vec::new();
        for kv in reply
            .get("kvs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(key) = kv.get("key").and_then(Value::as_str) else {
                continue;
            };
            let Ok(bytes) = B64.decode(key) else {
                continue;
            };
            if let Some(key) = String::from_utf8(bytes)
                .ok()
                .and_then(|key| key.strip_prefix(&self.prefix).map(str::to_owned))
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.call("/v3/maintenance/status", json!({}))
            .await
            .map(drop)
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.delete_match("*").await.map(drop)
    }

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn capabilities(&self) -> Capabilities {
        // Prefix patterns only, so no SCAN; no counters, sets or locks.
        Capabilities::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(range_end(b"a"), b"b");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
        let backend = EtcdBackend::builder().prefix("p/").build();
        assert_eq!(
            backend.prefix_range("user:*").unwrap(),
            (b"p/user:".to_vec(), b"p/user;".to_vec())
        );
        assert!(matches!(
            backend.prefix_range("user:*:x"),
            Err(BackendError::Unsupported { .. })
        ));
        assert!(backend.prefix_range("user:1").is_err());
    }
}
