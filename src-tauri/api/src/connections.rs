//! Accepting and serving connections so that the server holds up against
//! slow and idle clients, without ever cutting a well-behaved keep-alive
//! client in the middle of its next request:
//!
//! - every connection holds one of `cap` slots from just after `accept` to
//!   close (half open ones included), and `cap` stays at most half the
//!   process's open-file limit, so accepting never runs the process out of
//!   files;
//! - a request head must be complete within `header_read_timeout` of its
//!   *first byte* (see [`ConnectionClock`]). The bound does not run while a
//!   keep-alive connection waits between requests: closing such a
//!   connection races the client's next request (it sees a reset), which is
//!   why that wait has its own, much longer bound, `idle_timeout`, above
//!   the pool idle time of common HTTP clients (90 s in Go's and reqwest's
//!   defaults), so those clients retire the connection first;
//! - when every slot is taken, a connection is closed to make room, so a
//!   new client (`/health` among them) is answered even while a flood of
//!   slow connections is held. Connections that never completed a request
//!   (half-open, trickling) go first, oldest first; only then the oldest
//!   keep-alive connection without a request in flight. A request is in
//!   flight from the moment its whole body has arrived (see
//!   [`ConnectionActivity`]) until its answer is ready. Only when every
//!   slot has a request in flight does the next connection wait in the
//!   listen backlog (with one accepted socket waiting for a slot).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;
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
    /// Upper bound from a request head's first byte to its end.
    pub header_read_timeout: Duration,
    /// Upper bound for a connection to wait for the first byte of a request
    /// (after it opened, or after its last answer).
    pub idle_timeout: Duration,
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

/// Where one connection is between requests, with when it got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle(Instant),
    /// Bytes of a request head arrived; the head is not complete yet.
    ReceivingHead(Instant),
    /// A request head is complete and the request is being handled (its
    /// body read under the body-reading middleware's own bound).
    Handling,
}

#[derive(Debug)]
struct ClockState {
    phase: Phase,
    /// Requests answered on this connection.
    answered: u64,
}

/// What one connection is doing, kept by the socket wrapper ([`Watched`])
/// and the request service, read by the connection's watchdog and by the
/// accept loop when it needs room.
#[derive(Debug)]
struct ConnectionClock {
    state: Mutex<ClockState>,
    changed: Notify,
}

impl ConnectionClock {
    fn new(now: Instant) -> ConnectionClock {
        ConnectionClock {
            state: Mutex::new(ClockState {
                phase: Phase::Idle(now),
                answered: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: an idle connection starts receiving a head. Bytes
    /// that arrive while a request is handled (its body, or a pipelined
    /// next request) start no clock.
    fn bytes_read(&self, now: Instant) {
        let mut state = self.lock();
        if let Phase::Idle(_) = state.phase {
            state.phase = Phase::ReceivingHead(now);
            drop(state);
            self.changed.notify_one();
        }
    }

    fn head_complete(&self) {
        self.lock().phase = Phase::Handling;
        self.changed.notify_one();
    }

    fn answered(&self, now: Instant) {
        let mut state = self.lock();
        state.phase = Phase::Idle(now);
        state.answered += 1;
        drop(state);
        self.changed.notify_one();
    }

    /// When the connection is due to be closed as it stands, if ever. A
    /// connection that never sent a request has only the head's bound: no
    /// client has a request of its own on it that a close could race.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let state = self.lock();
        match state.phase {
            Phase::Idle(since) if state.answered == 0 => Some(since + limits.header_read_timeout),
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::ReceivingHead(since) => Some(since + limits.header_read_timeout),
            Phase::Handling => None,
        }
    }

    fn never_answered(&self) -> bool {
        let state = self.lock();
        state.answered == 0 && state.phase != Phase::Handling
    }

    /// Resolves once the connection is past its deadline.
    async fn expired(&self, limits: ConnectionLimits) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline(&limits) {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// Marks the request answered when dropped (also when the request's future
/// is dropped unfinished).
struct Answering(Arc<ConnectionClock>);

/// An answer's body, holding the request as being handled until the body
/// is done (sent in full, or dropped).
struct Answered {
    body: Body,
    _answering: Answering,
}

impl http_body::Body for Answered {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answered(Instant::now());
    }
}

/// The socket, reporting every read to the connection's clock.
struct Watched {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// One open connection as the accept loop sees it.
struct Slot {
    /// Requests of this connection being handled now.
    in_flight: Arc<AtomicUsize>,
    clock: Arc<ConnectionClock>,
    /// Notified to close the connection at once.
    close: Arc<Notify>,
    /// Set once the connection was told to close.
    closing: bool,
}

impl Slot {
    fn closable(&self) -> bool {
        !self.closing && self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// The open connections, in accept order.
#[derive(Default)]
struct Registry {
    slots: Mutex<BTreeMap<u64, Slot>>,
}

impl Registry {
    fn insert(&self, id: u64, slot: Slot) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(id, slot);
    }

    fn remove(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(&id);
    }

    /// Tells one connection without a request in flight to close: the
    /// oldest that never completed a request, else the oldest of the rest.
    /// False when every connection has a request in flight (or is closing).
    fn close_one(&self) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let victim = slots
            .iter()
            .filter(|(_, slot)| slot.closable())
            .find(|(_, slot)| slot.clock.never_answered())
            .or_else(|| slots.iter().find(|(_, slot)| slot.closable()))
            .map(|(id, _)| *id);
        match victim.and_then(|id| slots.get_mut(&id)) {
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
        // Accepted first, then given a slot: room is made only for a
        // connection that is there (making it ahead would close the newest
        // connection before it could send its request). The slot count is
        // thereby exceeded by at most this one socket.
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of files or a connection reset before accept: the
                    // loop goes on after a pause instead of spinning.
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let permit = tokio::select! {
            permit = make_room(&slots, &registry) => permit,
            _ = &mut stop => break,
        };
        next_id += 1;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let clock = Arc::new(ConnectionClock::new(Instant::now()));
        let close = Arc::new(Notify::new());
        registry.insert(
            next_id,
            Slot {
                in_flight: in_flight.clone(),
                clock: clock.clone(),
                close: close.clone(),
                closing: false,
            },
        );
        tokio::spawn(serve_connection(Connection {
            id: next_id,
            stream,
            app: app.clone(),
            limits,
            in_flight,
            clock,
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

/// A free slot: taken at once when there is one; otherwise a connection is
/// told to close ([`Registry::close_one`]) and its slot is awaited.
async fn make_room(slots: &Arc<Semaphore>, registry: &Registry) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        registry.close_one();
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
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    in_flight: Arc<AtomicUsize>,
    clock: Arc<ConnectionClock>,
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
        clock,
        close,
        registry,
        mut shutting_down,
        permit,
    } = connection;
    let activity = ConnectionActivity(in_flight);
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        service_clock.head_complete();
        let answering = Answering(service_clock.clone());
        request.extensions_mut().insert(activity.clone());
        let handled = app.clone().oneshot(request.map(Body::new));
        // Handling lasts until the answer's body is sent in full: an
        // endless body (the event stream) is never idle.
        async move {
            let answer = handled.await;
            answer.map(|response| {
                response.map(|body| {
                    Body::new(Answered {
                        body,
                        _answering: answering,
                    })
                })
            })
        }
    });
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
    });
    // hyper's own header timer also runs while a keep-alive connection
    // waits for its next request; the clock above bounds the two apart.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    {
        // The socket lives in this block and is closed at its end, before
        // the slot is given back.
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            // Closed to make room.
            _ = close.notified() => {}
            _ = clock.expired(limits) => {}
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

    const LIMITS: ConnectionLimits = ConnectionLimits {
        cap: 1,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
    };

    #[test]
    fn the_head_bound_runs_from_a_heads_first_byte_and_the_idle_bound_between_requests() {
        let opened = Instant::now();
        let clock = ConnectionClock::new(opened);
        // Nothing sent yet: only the head's bound.
        assert_eq!(
            clock.deadline(&LIMITS),
            Some(opened + LIMITS.header_read_timeout)
        );
        let first_byte = opened + Duration::from_secs(1);
        clock.bytes_read(first_byte);
        assert_eq!(
            clock.deadline(&LIMITS),
            Some(first_byte + LIMITS.header_read_timeout)
        );
        // More bytes of the same head move nothing.
        clock.bytes_read(first_byte + Duration::from_secs(5));
        assert_eq!(
            clock.deadline(&LIMITS),
            Some(first_byte + LIMITS.header_read_timeout)
        );
        clock.head_complete();
        assert_eq!(clock.deadline(&LIMITS), None);
        assert!(!clock.never_answered());
        // Body bytes while handling start no clock.
        clock.bytes_read(first_byte + Duration::from_secs(6));
        assert_eq!(clock.deadline(&LIMITS), None);
        let answered = first_byte + Duration::from_secs(7);
        clock.answered(answered);
        assert_eq!(
            clock.deadline(&LIMITS),
            Some(answered + LIMITS.idle_timeout)
        );
        let next = answered + Duration::from_secs(60);
        clock.bytes_read(next);
        assert_eq!(
            clock.deadline(&LIMITS),
            Some(next + LIMITS.header_read_timeout)
        );
    }

    #[test]
    fn a_connection_that_never_completed_a_request_counts_as_never_answered() {
        let clock = ConnectionClock::new(Instant::now());
        assert!(clock.never_answered());
        clock.bytes_read(Instant::now());
        assert!(clock.never_answered());
        clock.head_complete();
        clock.answered(Instant::now());
        assert!(!clock.never_answered());
    }
}
