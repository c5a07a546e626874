//! Connections to one memcached server: a small pool, one exchange per checkout, never a half-read reply
//! left for the next caller.
//!
//! Cancel safety: a connection goes back to the pool only after an exchange read every reply it asked for.
//! When a call is dropped halfway (its caller was cancelled, or the command timeout fired) the connection is
//! closed instead, so a late reply can never be read as the answer to someone else's request.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::{Instant, Sleep};

use super::protocol::{parse_reply, Reply};
use cache_core::BackendError;

/// One open connection, its buffers and its command timer, all kept between calls: a request allocates nothing
/// and arms no new timer.
pub(crate) struct Connection {
    io: Io,
    /// The command deadline of the exchange in progress, with the runtime whose timer wheel holds it. One
    /// timer per connection, moved forward call after call: tokio extends a registered timer's deadline with
    /// one atomic write, where a new timer per call costs a lock of the timer wheel to register and another to
    /// cancel (the largest per-call cost left at 64 tasks). Created on the connection's first exchange, which
    /// runs in the call that opened the socket, so the timer and the socket belong to the same runtime. A call
    /// from another runtime must not rely on this timer: nothing may be driving its runtime (one kept but
    /// idle), and the call would then wait forever.
    timer: Option<(tokio::runtime::Id, Pin<Box<Sleep>>)>,
}

struct Io {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
}

impl Connection {
    /// Runs one exchange (see [`Io::exchange`]) that fails with [`BackendError::Timeout`] at `deadline`.
    pub(crate) async fn exchange(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        write: impl FnOnce(&mut BytesMut),
        done: impl FnMut(Reply) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        let here = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        let timer = match (&mut self.timer, here) {
            (Some((runtime, timer)), Some(here)) if *runtime == here => {
                timer.as_mut().reset(deadline);
                timer
            }
            (None, Some(here)) => {
                let timer = Box::pin(tokio::time::sleep_until(deadline));
                &mut self.timer.insert((here, timer)).1
            }
            _ => {
                return tokio::time::timeout_at(deadline, self.io.exchange(write, done))
                    .await
                    .map_err(|_| BackendError::Timeout(timeout))?;
            }
        };
        let exchange = self.io.exchange(write, done);
        tokio::pin!(exchange);
        // The exchange first: a call that completes never looks at the timer.
        poll_fn(|cx| {
            if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            timer
                .as_mut()
                .poll(cx)
                .map(|()| Err(BackendError::Timeout(timeout)))
        })
        .await
    }
}

impl Io {
    async fn open(address: &str) -> Result<Self, BackendError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| BackendError::Connection(format!("memcached {address}: {e}")))?;
        // Requests are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            read: BytesMut::with_capacity(16 * 1024),
            write: BytesMut::with_capacity(1024),
        })
    }

    /// Sends the request `write` puts into the connection's buffer and reads replies until `done` says the
    /// exchange is complete, handing each to it.
    async fn exchange(
        &mut self,
        write: impl FnOnce(&mut BytesMut),
        mut done: impl FnMut(Reply) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        self.write.clear();
        write(&mut self.write);
        self.stream.write_all(&self.write).await.map_err(io_error)?;
        if self.write.capacity() > 64 * 1024 {
            // A large multi-set made it big; don't keep that per connection.
            self.write = BytesMut::with_capacity(1024);
        }
        loop {
            while let Some(reply) = parse_reply(&mut self.read)
                .map_err(|e| BackendError::Other(format!("memcached protocol: {e}")))?
            {
                if done(reply)? {
                    if !self.read.is_empty() {
                        return Err(BackendError::Other(
                            "memcached sent more replies than were asked for".into(),
                        ));
                    }
                    return Ok(());
                }
            }
            self.read.reserve(8 * 1024);
            let read = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(io_error)?;
            if read == 0 {
                return Err(BackendError::Connection(
                    "memcached closed the connection".into(),
                ));
            }
        }
    }
}

fn io_error(error: std::io::Error) -> BackendError {
    BackendError::Connection(format!("memcached: {error}"))
}

/// Up to `size` connections to one server, opened on demand.
pub(crate) struct Pool {
    address: String,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
}

/// A connection taken from the pool. Dropped without [`Checkout::release`] it is closed.
pub(crate) struct Checkout<'p> {
    pool: &'p Pool,
    pub(crate) connection: Option<Connection>,
    _slot: SemaphorePermit<'p>,
}

impl Checkout<'_> {
    /// The exchange completed: the connection is clean and goes back to the pool.
    pub(crate) fn release(mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.idle.lock().push(connection);
        }
    }
}

impl Pool {
    pub(crate) fn new(address: String, size: usize) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// A connection: an idle one, or a new one when none is idle and the pool is not full.
    ///
    /// Waiting for a free slot arms no timer of its own: slots are handed out first come, first served, so
    /// every holder started before this call and gives its slot back by its own deadline, which is no later
    /// than this call's. A slot that comes after `deadline` anyway is a timeout (a slot free at once needs no
    /// clock reading).
    async fn checkout(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Checkout<'_>, BackendError> {
        let slot = match self.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                let slot = self
                    .slots
                    .acquire()
                    .await
                    .map_err(|_| BackendError::Connection("memcached pool closed".into()))?;
                if Instant::now() >= deadline {
                    // The connection would be clean, but a slot this late is a timeout.
                    return Err(BackendError::Timeout(timeout));
                }
                slot
            }
        };
        let idle = self.idle.lock().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let io = tokio::time::timeout_at(deadline, Io::open(&self.address))
                    .await
                    .map_err(|_| BackendError::Timeout(timeout))??;
                Connection { io, timer: None }
            }
        };
        Ok(Checkout {
            pool: self,
            connection: Some(connection),
            _slot: slot,
        })
    }

    /// Closes every idle connection (after the server failed: they are probably broken too).
    pub(crate) fn drop_idle(&self) {
        self.idle.lock().clear();
    }

    /// Runs one exchange on a pooled connection within `timeout`.
    pub(crate) async fn run(
        &self,
        write: impl FnOnce(&mut BytesMut),
        timeout: Duration,
        done: impl FnMut(Reply) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        let deadline = Instant::now() + timeout;
        let mut checkout = self.checkout(deadline, timeout).await?;
        let connection = checkout
            .connection
            .as_mut()
            .ok_or_else(|| BackendError::Other("memcached connection missing".into()))?;
        connection.exchange(deadline, timeout, write, done).await?;
        checkout.release();
        Ok(())
    }
}
