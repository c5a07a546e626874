//! [`RedisBackplane`]: a tiered cache's backplane on Redis pub/sub (feature `redis`), usable whatever the L2 is
//! (Redis, memcached, disk).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use async_trait::async_trait;
use cache_core::BackendError;
use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::Builder;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::tiered::{Backplane, BackplaneEvent, BackplaneMessage};

/// How long a publish may take before the write that sent it goes on without it.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
use crate::SetupError;

/// Redis pub/sub as a backplane: one connection publishes, one subscribes (re-subscribing after every
/// reconnect, and reporting `Down` until it has).
///
/// # Example
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), cache_backends::SetupError> {
/// use std::sync::Arc;
/// use cache_backends::tiered::{TieredBackend, TieredOptions};
/// let backplane = cache_backends::RedisBackplane::connect("redis://127.0.0.1:6379", "myapp").await?;
/// let l2: Arc<dyn cache_core::Backend> = Arc::new(cache_core::MemoryBackend::default());
/// let tiered = TieredBackend::new(l2, Some(backplane), TieredOptions::default());
/// # let _ = tiered; Ok(()) }
/// ```
pub struct RedisBackplane {
    /// Marks this process's messages, so it skips them when they come back.
    sender: String,
    publisher: Client,
    subscriber: Client,
    channel: String,
    events: broadcast::Sender<BackplaneEvent>,
    up: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("channel", &self.channel)
            .field("up", &self.up.load(SeqCst))
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let (publisher, subscriber) = (self.publisher.clone(), self.subscriber.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = publisher.quit().await;
                let _ = subscriber.quit().await;
            });
        }
    }
}

fn client(url: &str) -> Result<Client, SetupError> {
    let config = Config::from_url(url).map_err(|e| SetupError::InvalidUrl {
        url: url.to_owned(),
        reason: e.details().to_owned(),
    })?;
    Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2))
        .build()
        .map_err(|e| SetupError::Redis(e.details().to_owned()))
}

impl RedisBackplane {
    /// Connects to the Redis at `url` (a plain `redis://` URL) and subscribes to `cachette:backplane:<name>`:
    /// give every process sharing an L2 the same `name`.
    ///
    /// # Example
    /// See [`RedisBackplane`].
    pub async fn connect(url: &str, name: &str) -> Result<Arc<RedisBackplane>, SetupError> {
        let channel = format!("cachette:backplane:{name}");
        let publisher = client(url)?;
        let subscriber = client(url)?;
        let (events, _) = broadcast::channel(4096);
        let up = Arc::new(AtomicBool::new(false));
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let sender = format!(
            "{:016x}",
            u64::from_le_bytes(random) ^ u64::from(std::process::id())
        );
        let mut tasks = Vec::new();
        // Messages → events.
        {
            let mut messages = subscriber.message_rx();
            let (events, channel, me) = (events.clone(), channel.clone(), sender.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok(message) = messages.recv().await {
                    if &*message.channel != channel.as_str() {
                        continue;
                    }
                    let Some(text) = message.value.as_string() else {
                        continue;
                    };
                    // `<sender>|k:<key>` or `<sender>|*`; our own messages are skipped.
                    let Some((from, body)) = text.split_once('|') else {
                        continue;
                    };
                    if from == me {
                        continue;
                    }
                    let parsed = match body.strip_prefix("k:") {
                        Some(key) => BackplaneMessage::Key(key.to_owned()),
                        None => BackplaneMessage::Everything,
                    };
                    let _ = events.send(BackplaneEvent::Message(parsed));
                }
            }));
        }
        // Connection events → Down; every (re)connect → subscribe, then Up.
        {
            let mut reconnects = subscriber.reconnect_rx();
            let mut errors = subscriber.error_rx();
            let mut unresponsive = subscriber.unresponsive_rx();
            let (events, up, channel, sub) = (
                events.clone(),
                up.clone(),
                channel.clone(),
                subscriber.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let down = |events: &broadcast::Sender<BackplaneEvent>, up: &AtomicBool| {
                    up.store(false, SeqCst);
                    let _ = events.send(BackplaneEvent::Down);
                };
                loop {
                    tokio::select! {
                        event = reconnects.recv() => {
                            if matches!(event, Err(broadcast::error::RecvError::Closed)) { return; }
                            down(&events, &up);
                            match sub.subscribe(channel.clone()).await {
                                Ok(()) => {
                                    up.store(true, SeqCst);
                                    let _ = events.send(BackplaneEvent::Up);
                                }
                                Err(error) => tracing::warn!(%error, "backplane subscribe failed"),
                            }
                        }
                        event = errors.recv() => {
                            if matches!(event, Err(broadcast::error::RecvError::Closed)) { return; }
                            down(&events, &up);
                        }
                        event = unresponsive.recv() => {
                            if matches!(event, Err(broadcast::error::RecvError::Closed)) { return; }
                            down(&events, &up);
                        }
                    }
                }
            }));
        }
        drop(publisher.connect());
        drop(subscriber.connect());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            let _ = publisher.wait_for_connect().await;
            while !up.load(SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        Ok(Arc::new(RedisBackplane {
            sender,
            publisher,
            subscriber,
            channel,
            events,
            up,
            tasks,
        }))
    }
}

#[async_trait]
impl Backplane for RedisBackplane {
    async fn publish(&self, message: BackplaneMessage) -> Result<(), BackendError> {
        let payload = match message {
            BackplaneMessage::Key(key) => format!("{}|k:{key}", self.sender),
            _ => format!("{}|*", self.sender),
        };
        // Never queue behind a reconnect: a write must not wait for the backplane.
        let options = fred::types::config::Options {
            timeout: Some(PUBLISH_TIMEOUT),
            fail_fast: true,
            max_attempts: Some(1),
            ..Default::default()
        };
        self.publisher
            .with_options(&options)
            .publish::<(), _, _>(self.channel.as_str(), payload)
            .await
            .map_err(|e| BackendError::Connection(e.to_string()))
    }

    fn events(&self) -> broadcast::Receiver<BackplaneEvent> {
        self.events.subscribe()
    }

    fn is_up(&self) -> bool {
        self.up.load(SeqCst)
    }
}
