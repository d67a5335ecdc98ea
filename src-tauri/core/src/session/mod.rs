//! Live whatsapp-rust sessions: one client per device with an open session.

pub mod store;

use crate::error::{Result, ServiceError};
use crate::files::{DataLayout, create_private_dir};
use crate::model::DeviceId;
use crate::secrets::SecretStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use wacore::types::events::{Event, EventHandler};
use whatsapp_rust::Client;
use whatsapp_rust::bot::Bot;

/// Where sessions connect to. Outside the `simulator` feature there is only
/// WhatsApp itself; the feature adds a server URL or an in-process transport.
#[derive(Clone, Default)]
pub enum ServerEndpoint {
    /// WhatsApp's production servers (`wss://web.whatsapp.com/ws/chat`).
    #[default]
    WhatsApp,
    /// A WebSocket URL (e.g. the loopback simulator). Test builds only.
    #[cfg(feature = "simulator")]
    WebSocketUrl(String),
    /// An in-process transport (e.g. the simulator's). Test builds only.
    #[cfg(feature = "simulator")]
    Transport(Arc<dyn whatsapp_rust::transport::TransportFactory>),
}

impl std::fmt::Debug for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerEndpoint::WhatsApp => f.write_str("WhatsApp"),
            #[cfg(feature = "simulator")]
            ServerEndpoint::WebSocketUrl(url) => write!(f, "WebSocketUrl({url})"),
            #[cfg(feature = "simulator")]
            ServerEndpoint::Transport(_) => f.write_str("Transport(..)"),
        }
    }
}

#[cfg(feature = "simulator")]
struct SharedTransportFactory(Arc<dyn whatsapp_rust::transport::TransportFactory>);

#[cfg(feature = "simulator")]
#[async_trait::async_trait]
impl whatsapp_rust::transport::TransportFactory for SharedTransportFactory {
    async fn create_transport(
        &self,
    ) -> std::result::Result<
        (
            Arc<dyn whatsapp_rust::transport::Transport>,
            whatsapp_rust::async_channel::Receiver<whatsapp_rust::transport::TransportEvent>,
        ),
        whatsapp_rust::anyhow::Error,
    > {
        self.0.create_transport().await
    }
}

/// How sessions are made: where they connect and, in simulator builds, how
/// fast the client's clock runs.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub server: ServerEndpoint,
    /// Divides every sleep and timeout the client takes through its runtime
    /// (the fixed 10 s wait after pairing, QR rotation, backoff), so tests
    /// against a simulator run fast. 1 = real time.
    #[cfg(feature = "simulator")]
    pub time_factor: u32,
}

#[cfg(feature = "simulator")]
struct CompressedRuntime {
    factor: u32,
}

#[cfg(feature = "simulator")]
#[async_trait::async_trait]
impl wacore::runtime::Runtime for CompressedRuntime {
    fn spawn(
        &self,
        future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>,
    ) -> wacore::runtime::AbortHandle {
        whatsapp_rust::TokioRuntime.spawn(future)
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration / self.factor))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        whatsapp_rust::TokioRuntime.spawn_blocking(f)
    }

    fn yield_now(&self) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        whatsapp_rust::TokioRuntime.yield_now()
    }
}

/// What a new session is for.
#[derive(Debug, Clone)]
pub enum SessionPurpose {
    /// Link a new companion by QR code.
    PairByQr,
    /// Link a new companion by pairing code for this phone number (digits).
    PairByCode(String),
    /// Connect a device that has credentials.
    Connect,
}

/// What a session reports to the service.
#[derive(Debug, Clone)]
pub enum SessionSignal {
    /// An event of the client the service acts on.
    Event(Arc<Event>),
    /// The client's run loop ended by itself: the connection failed or
    /// dropped and the client will not retry (the service schedules retries,
    /// see [`LiveSession::start`]), or the session ended for good (then an
    /// event saying why came first).
    Ended,
}

/// The signals of a session, tagged with the session's generation so that
/// signals of a stopped session are recognized and ignored.
pub type SessionEvents = mpsc::UnboundedReceiver<(u64, SessionSignal)>;

type SignalSender = mpsc::UnboundedSender<(u64, SessionSignal)>;

struct EventForwarder {
    generation: u64,
    tx: SignalSender,
}

impl EventHandler for EventForwarder {
    fn handle_event(&self, event: Arc<Event>) {
        // Runs inline on the client's dispatch path, so events keep their
        // order. Only the events the service acts on are forwarded.
        let relevant = matches!(
            &*event,
            Event::Connected(_)
                | Event::Disconnected(_)
                | Event::PairSuccess(_)
                | Event::PairError(_)
                | Event::LoggedOut(_)
                | Event::PairingQrCode(_)
                | Event::PairingCode(_)
                | Event::PairingCodeError(_)
                | Event::PairingQrCodesExhausted(_)
                | Event::ClientOutdated(_)
                | Event::StreamReplaced(_)
                | Event::TemporaryBan(_)
                | Event::ConnectFailure(_)
                | Event::SelfPushNameUpdated(_)
        );
        if relevant {
            // The receiver is gone only when the session was dropped.
            let _ = self.tx.send((self.generation, SessionSignal::Event(event)));
        }
    }
}

/// Where a session's long-term secrets live.
pub struct SessionSecrets {
    pub store: Arc<dyn SecretStore>,
    /// The device's keyring entry when the caller read it already: saves
    /// the session store a second keyring round trip.
    pub prefetched: Option<Vec<u8>>,
}

/// Where a session's store comes from.
pub enum StoreSource<'a> {
    /// Opened in the data folder (created, private, if needed), on the
    /// keyring entry named.
    DataFolder(&'a DataLayout, String),
    /// Opened by the caller already.
    Opened(Arc<store::SessionStore>),
}

/// A running whatsapp-rust client of one device.
pub struct LiveSession {
    pub generation: u64,
    pub client: Arc<Client>,
    /// Whether the library itself asks for the session's pairing code (a
    /// session started as a code login): a failed request then reaches the
    /// service only as an event.
    pub library_asks_for_code: bool,
    run: tokio::task::JoinHandle<()>,
    store: Arc<store::SessionStore>,
}

impl LiveSession {
    /// Opens the device's session store (or takes the one opened already)
    /// and starts a client on it. Events go to `events`, then
    /// [`SessionSignal::Ended`] when the client's run loop ends.
    ///
    /// Retries belong to the service, not to the library: a `Connect`
    /// session's client has its own reconnect loop turned off, so a failed or
    /// dropped connection ends the run loop and the service schedules the
    /// next attempt (with its backoff, jitter and concurrency bound, and a
    /// `next_retry_at` the admin can see). A pairing session keeps the
    /// library's loop until it is logged in, because linking needs the
    /// immediate reconnect after the server's `515` restart; the service
    /// turns it off at `Connected` (see [`LiveSession::stop_library_retries`]).
    pub async fn start(
        id: &DeviceId,
        store: StoreSource<'_>,
        secrets: SessionSecrets,
        settings: &SessionSettings,
        purpose: SessionPurpose,
        generation: u64,
        events: SignalSender,
    ) -> Result<LiveSession> {
        let store = match store {
            StoreSource::Opened(store) => store,
            StoreSource::DataFolder(layout, entry) => {
                create_private_dir(&layout.sessions_dir())?;
                let db_path = layout.session_db(id);
                Arc::new(store::SessionStore::open_named(
                    &db_path,
                    secrets.store,
                    entry,
                )?)
            }
        };
        if let Some(raw) = secrets.prefetched {
            store.prime(&raw)?;
        }
        // A failure left by an earlier user of the store is not this start's.
        store.take_keyring_failure();

        let ended = events.clone();
        let library_retries = !matches!(purpose, SessionPurpose::Connect);
        let library_asks_for_code = matches!(purpose, SessionPurpose::PairByCode(_));
        let builder = Bot::builder()
            .with_backend_arc(Arc::clone(&store) as Arc<dyn wacore::store::traits::Backend>)
            .with_event_handler(EventForwarder {
                generation,
                tx: events,
            })
            .skip_history_sync();
        let builder = match purpose {
            SessionPurpose::PairByCode(phone_number) => {
                builder.with_pair_code(whatsapp_rust::pair_code::PairCodeOptions {
                    phone_number,
                    ..Default::default()
                })
            }
            SessionPurpose::PairByQr | SessionPurpose::Connect => builder,
        };
        let bot = match &settings.server {
            ServerEndpoint::WhatsApp => builder.build().await,
            #[cfg(feature = "simulator")]
            ServerEndpoint::WebSocketUrl(url) => {
                builder
                    .with_runtime(CompressedRuntime {
                        factor: settings.time_factor.max(1),
                    })
                    .with_transport_factory(
                        whatsapp_rust::transport::TokioWebSocketTransportFactory::new()
                            .with_url(url.clone()),
                    )
                    .with_version(SIMULATOR_CLIENT_VERSION)
                    .build()
                    .await
            }
            #[cfg(feature = "simulator")]
            ServerEndpoint::Transport(factory) => {
                builder
                    .with_runtime(CompressedRuntime {
                        factor: settings.time_factor.max(1),
                    })
                    .with_transport_factory(SharedTransportFactory(Arc::clone(factory)))
                    .with_version(SIMULATOR_CLIENT_VERSION)
                    .build()
                    .await
            }
        }
        .map_err(|err| build_error(&store, err))?;
        let client = bot.client();
        client
            .enable_auto_reconnect
            .store(library_retries, Ordering::Relaxed);
        let run = tokio::spawn(async move {
            bot.run().await;
            // The service is gone only when it dropped the session.
            let _ = ended.send((generation, SessionSignal::Ended));
        });
        Ok(LiveSession {
            generation,
            client,
            library_asks_for_code,
            run,
            store,
        })
    }

    /// From now on a dropped connection ends the run loop instead of being
    /// retried by the library (the library documents this use of the flag:
    /// "do not come back after this one ends").
    pub fn stop_library_retries(&self) {
        self.client
            .enable_auto_reconnect
            .store(false, Ordering::Relaxed);
    }

    /// The account JID the client is linked to, if the phone's link has
    /// landed. The library records it before it signs `pair-success` (see
    /// [`LiveSession::stop`]), so anything WhatsApp does after the link, such
    /// as ending the connection for the restart, comes after it is set.
    pub fn linked_as(&self) -> Option<whatsapp_rust::Jid> {
        self.client
            .persistence_manager()
            .get_device_snapshot()
            .pn
            .clone()
    }

    /// Stops the client: a clean disconnect bounded in time, then abort;
    /// then closes its session store, so that the caller may delete the
    /// store's files (the client's own tasks may hold the store a while
    /// longer, and would find it closed).
    ///
    /// Returns the account JID the client was linked to, if any. For a
    /// pairing session this tells whether the phone's link landed while the
    /// session was being stopped: the library records the JID (in memory;
    /// it reaches the store later) before it signs `pair-success`, and
    /// nothing is sent once the connection is closed, so a JID read after
    /// the disconnect covers every link that reached WhatsApp (see
    /// [`store::SessionStore::ensure_linked_as`]).
    pub async fn stop(self) -> Option<whatsapp_rust::Jid> {
        let client = Arc::clone(&self.client);
        let _ = tokio::time::timeout(STOP_TIMEOUT, client.disconnect()).await;
        self.run.abort();
        let linked_as = self.linked_as();
        self.store.close();
        linked_as
    }
}

impl Drop for LiveSession {
    /// A session dropped without [`LiveSession::stop`] (its owner was
    /// cancelled) still takes its client's run loop with it: no client
    /// outlives the session that owns it.
    fn drop(&mut self) {
        self.run.abort();
    }
}

/// The app version sent to a simulator, so that no version is fetched from
/// the internet.
#[cfg(feature = "simulator")]
pub const SIMULATOR_CLIENT_VERSION: (u32, u32, u32) = (2, 3000, 1_000_000_000);

/// How long a clean disconnect may take before the client task is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the client could not start. A keyring failure the store met is
/// reported as itself (`keyring_unavailable` and its words), recognised by
/// type; anything else is `internal`.
fn build_error(
    store: &store::SessionStore,
    err: whatsapp_rust::bot::BotBuilderError,
) -> ServiceError {
    store.take_keyring_failure().unwrap_or_else(|| {
        ServiceError::internal(format!("cannot start the WhatsApp client: {err}"))
    })
}
