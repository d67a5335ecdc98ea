//! Accepting and serving connections so that the server holds up against
//! slow and idle clients:
//!
//! - every connection holds one of `cap` slots from `accept` to close (half
//!   open ones included), and `cap` stays at most half the process's
//!   open-file limit, so accepting never runs the process out of files;
//! - a connection that has not sent a whole request head within
//!   `header_read_timeout` is closed, and the same bound closes a keep-alive
//!   connection that stays idle that long after its last answer;
//! - when every slot is taken, the oldest connection without a request in
//!   flight is closed to make room, so a new client (`/health` among them)
//!   is answered even while a flood of slow connections is held. A request
//!   is in flight from the moment its whole body has arrived (see
//!   [`ConnectionActivity`]) until its answer is ready: a client trickling
//!   its head or its body, or reading its answer slowly, can be closed.
//!   Only when every slot has a request in flight does the next connection
//!   wait in the listen backlog.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tower::ServiceExt;

/// The most connections any configuration opens at once (a bound for the
/// slot count, where the OS reports no open-file limit).
const MAX_CAP: u32 = 1 << 20;

/// How long a failed `accept` (for example out of files) pauses the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once, after [`effective_cap`].
    pub cap: usize,
    /// Upper bound for a request head to arrive, and for a keep-alive
    /// connection to stay idle.
    pub header_read_timeout: Duration,
}

/// `configured`, lowered to half the soft open-file limit where the OS has
/// one: the other half stays for the device service (databases, WhatsApp
/// connections, the keyring). At least 1.
pub fn effective_cap(configured: usize) -> usize {
    let by_files = open_file_limit().map_or(usize::MAX, |limit| limit / 2);
    configured.min(by_files).max(1)
}

#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

/// One open connection as the accept loop sees it.
struct Slot {
    /// Requests of this connection being handled now.
    in_flight: Arc<AtomicUsize>,
    /// Notified to close the connection at once.
    close: Arc<Notify>,
    /// Set once the connection was told to close.
    closing: bool,
}

/// The open connections, in accept order.
#[derive(Default)]
struct Registry {
    slots: Mutex<BTreeMap<u64, Slot>>,
}

impl Registry {
    fn insert(&self, id: u64, in_flight: Arc<AtomicUsize>, close: Arc<Notify>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(
            id,
            Slot {
                in_flight,
                close,
                closing: false,
            },
        );
    }

    fn remove(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(&id);
    }

    /// Tells the oldest connection without a request in flight to close;
    /// false when every connection has one (or is closing already).
    fn close_oldest_idle(&self) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let victim = slots
            .values_mut()
            .find(|slot| !slot.closing && slot.in_flight.load(Ordering::Acquire) == 0);
        match victim {
            Some(slot) => {
                slot.closing = true;
                slot.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The requests in flight on one connection, put in every request's
/// extensions. Whoever has received the whole request calls
/// [`ConnectionActivity::enter`] and holds the guard until the answer is
/// ready (the body-reading middleware does so for every route).
#[derive(Clone)]
pub struct ConnectionActivity(Arc<AtomicUsize>);

impl ConnectionActivity {
    pub fn enter(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }
}

/// Counts a request as in flight until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `stop` fires, then lets the open
/// connections finish their requests and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stop: oneshot::Receiver<()>,
) {
    let cap = u32::try_from(limits.cap)
        .unwrap_or(MAX_CAP)
        .clamp(1, MAX_CAP);
    let slots = Arc::new(Semaphore::new(cap as usize));
    let registry = Arc::new(Registry::default());
    let (shutdown, shutting_down) = watch::channel(false);
    let mut next_id: u64 = 0;
    loop {
        let permit = tokio::select! {
            permit = make_room(&slots, &registry) => permit,
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of files or a connection reset before accept: the
                    // loop goes on after a pause instead of spinning.
                    drop(permit);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        next_id += 1;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        registry.insert(next_id, in_flight.clone(), close.clone());
        tokio::spawn(serve_connection(Connection {
            id: next_id,
            stream,
            app: app.clone(),
            limits,
            in_flight,
            close,
            registry: registry.clone(),
            shutting_down: shutting_down.clone(),
            permit,
        }));
    }
    drop(listener);
    let _ = shutdown.send(true);
    // Every connection returns its slot when it closes.
    let _ = slots.acquire_many(cap).await;
}

/// A free slot: taken at once when there is one; otherwise the oldest idle
/// connection is told to close and its slot is awaited.
async fn make_room(slots: &Arc<Semaphore>, registry: &Registry) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        registry.close_oldest_idle();
        // A slot comes back when the closed connection (or any other) ends;
        // the wait is bounded so that a connection that became idle in the
        // meantime can be chosen on the next turn.
        if let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_millis(100), slots.clone().acquire_owned()).await
        {
            return permit;
        }
    }
}

struct Connection {
    id: u64,
    stream: tokio::net::TcpStream,
    app: Router,
    limits: ConnectionLimits,
    in_flight: Arc<AtomicUsize>,
    close: Arc<Notify>,
    registry: Arc<Registry>,
    shutting_down: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        id,
        stream,
        app,
        limits,
        in_flight,
        close,
        registry,
        mut shutting_down,
        permit,
    } = connection;
    let activity = ConnectionActivity(in_flight);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(activity.clone());
        app.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    {
        // The socket lives in this block and is closed at its end, before
        // the slot is given back.
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            // Closed to make room.
            _ = close.notified() => {}
            _ = async { shutting_down.wait_for(|stop| *stop).await.map(|_| ()) } => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
            }
        }
    }
    registry.remove(id);
    drop(permit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_at_most_half_the_open_file_limit() {
        let cap = effective_cap(usize::MAX);
        match open_file_limit() {
            Some(limit) => assert_eq!(cap, (limit / 2).max(1)),
            None => assert_eq!(cap, usize::MAX),
        }
        assert_eq!(effective_cap(0), 1);
        assert_eq!(effective_cap(3), 3);
    }
}
