//! Simulator state: phones and their linked companions, live connections,
//! injected faults, and the handle tests drive it through.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::cert_chain::CertRoot;
use crate::error::{PhoneError, WaitTimeout};
use crate::noise::{HandshakeKind, ServerIdentity};
use crate::phone_crypto;
use crate::session::{self, AnswerHandler, Link, SessionCommand};

/// Timing and limits of the simulated service. The defaults are WhatsApp's.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Companion devices one phone links at most; a scan beyond it is refused.
    pub max_companions: usize,
    /// QR refs sent in one `<pair-device>`.
    pub qr_ref_count: usize,
    /// How long the first QR ref stays valid.
    pub qr_first_ref_lifetime: Duration,
    /// How long each later QR ref stays valid.
    pub qr_next_ref_lifetime: Duration,
    /// How long a pairing code stays valid.
    pub pair_code_lifetime: Duration,
    /// How long the phone waits for the companion's answer to `pair-success`
    /// or for its `companion_finish`.
    pub companion_reply_timeout: Duration,
    /// Push name the phone reports in `<pair-success><biz name>`.
    pub push_name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            max_companions: 4,
            qr_ref_count: 6,
            qr_first_ref_lifetime: Duration::from_secs(60),
            qr_next_ref_lifetime: Duration::from_secs(20),
            pair_code_lifetime: Duration::from_secs(180),
            companion_reply_timeout: Duration::from_secs(30),
            push_name: "Simulated Phone".to_string(),
        }
    }
}

/// How the server answers `<remove-companion-device>` (client logout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutReply {
    /// Unlink the device and answer `result`.
    #[default]
    Ok,
    /// Answer `error` 500 and keep the device linked.
    Error,
    /// Never answer and keep the device linked.
    NoAnswer,
    /// Never answer, and unlink the device `ms` milliseconds later: a
    /// server that honours the logout after the client gave up waiting.
    HonouredLate { ms: u64 },
}

/// A fault to inject, by name: what [`Simulator::inject`] and the control
/// API's `POST /faults {"fault": "<name>", ..}` accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// [`Simulator::drop_connections`]
    DropConnections,
    /// [`Simulator::stall`]
    Stall,
    /// [`Simulator::replace`]
    Replace { jid: String },
    /// [`Simulator::ban`]; `code` defaults to 101.
    Ban {
        jid: String,
        #[serde(default = "default_ban_code")]
        code: u32,
        seconds: u64,
    },
    /// [`Simulator::set_client_outdated`]
    ClientOutdated { on: bool },
    /// [`Simulator::lock_account`]
    LockAccount { jid: String },
    /// [`Simulator::fail_next_logins_with_503`]
    #[serde(rename = "fail_logins_503")]
    FailLogins503 { count: u32 },
    /// [`Simulator::stream_error_503`]
    #[serde(rename = "stream_error_503")]
    StreamError503,
    /// [`Simulator::set_logout_reply`]
    LogoutReply { reply: LogoutReply },
    /// [`Simulator::set_latency`]
    Latency { ms: u64 },
    /// [`Simulator::rotate_server_key`]
    RotateServerKey,
    /// [`Simulator::set_unreachable`]
    Unreachable { on: bool },
    /// [`Simulator::clear_faults`]
    Clear,
}

fn default_ban_code() -> u32 {
    101
}

/// A companion device linked to a simulated phone.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedDevice {
    #[serde(serialize_with = "as_string")]
    pub jid: Jid,
    #[serde(serialize_with = "as_string")]
    pub lid: Jid,
    pub key_index: u32,
    /// `qr` or `code`.
    pub linked_with: &'static str,
    /// One-time pre-keys the companion uploaded (`encrypt` IQ), as WhatsApp
    /// keeps them for senders that start a session with it.
    pub pre_keys: u32,
    #[serde(skip)]
    pub(crate) noise_key: [u8; 32],
    /// What the device registered, for `encrypt`/`digest`.
    #[serde(skip)]
    pub(crate) key_bundle: crate::routine_iqs::KeyBundle,
}

fn as_string<S: serde::Serializer>(jid: &Jid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&jid.to_string())
}

/// Something the simulator observed; kept in order for tests and the
/// control API (`GET /events`). No secrets in here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SimEvent {
    /// A handshake completed for an unpaired device and QR refs were sent.
    RegistrationStarted {
        session: u64,
        handshake: HandshakeKind,
    },
    /// A pairing code was requested for `phone`.
    PairingCodeRequested { session: u64, phone: String },
    /// The phone linked `jid` (the companion signed `pair-success`).
    Paired { jid: String, with: &'static str },
    /// A linked device logged in; `handshake` tells IK from XX / fallback.
    LoggedIn {
        session: u64,
        jid: String,
        handshake: HandshakeKind,
    },
    /// A login was refused with `<failure reason=..>`.
    LoginRefused {
        phone: String,
        device: u16,
        reason: u16,
    },
    /// `jid` uploaded `count` one-time pre-keys.
    PreKeysUploaded { jid: String, count: u32 },
    /// `jid` was unlinked, by the companion's logout or from the phone.
    Unlinked { jid: String, by: &'static str },
    /// The server answered `remove-companion-device` without unlinking.
    LogoutNotHonoured { jid: String, reply: LogoutReply },
    /// A connection failed before or outside the protocol's own endings:
    /// a refused connection header, a handshake that did not complete, a
    /// frame that did not decrypt or decode. `stage` is `header`,
    /// `handshake` or `transport`; `reason` never holds key material.
    SessionFailed {
        session: u64,
        stage: &'static str,
        reason: String,
    },
    /// A connection ended.
    SessionClosed { session: u64, jid: Option<String> },
    /// `jid` ran a usync query for `protocols`: `listed` are the users in the
    /// answer, `unchanged` those left out because the client's device-list
    /// hash was current.
    UsyncAnswered {
        session: u64,
        jid: String,
        protocols: Vec<String>,
        listed: Vec<String>,
        unchanged: Vec<String>,
    },
    /// An IQ the simulator does not model was answered with a 501 error:
    /// its `xmlns`, and `what` in it (its first child, or the usync mode or
    /// protocol) is not modelled.
    IqNotModelled {
        session: u64,
        xmlns: String,
        what: String,
    },
}

/// What a live connection is doing, as far as the simulator's state goes.
pub(crate) enum SessionRole {
    Handshaking,
    Registering(Box<Registration>),
    LoggedIn { jid: Jid },
}

/// A not-yet-paired companion: its keys and what it was offered.
pub(crate) struct Registration {
    pub(crate) noise_key: [u8; 32],
    pub(crate) identity_key: [u8; 32],
    pub(crate) qr_refs: Vec<QrRef>,
    pub(crate) code: Option<PendingCode>,
    /// Set while the phone is finishing a link, so one registration never
    /// links twice.
    pub(crate) linking: bool,
}

pub(crate) struct QrRef {
    pub(crate) value: String,
    pub(crate) expires_at: Instant,
}

pub(crate) struct PendingCode {
    pub(crate) phone: String,
    pub(crate) reference: Vec<u8>,
    pub(crate) wrapped_companion_ephemeral: Vec<u8>,
    pub(crate) expires_at: Instant,
    pub(crate) primary: Option<PrimaryWaiting>,
}

/// The phone's side of a typed code, waiting for `companion_finish`.
pub(crate) struct PrimaryWaiting {
    pub(crate) hello: phone_crypto::PrimaryHello,
    pub(crate) outcome: oneshot::Sender<Result<Jid, PhoneError>>,
}

pub(crate) struct SessionEntry {
    pub(crate) commands: mpsc::UnboundedSender<SessionCommand>,
    pub(crate) role: SessionRole,
}

pub(crate) struct PhoneRecord {
    pub(crate) identity: KeyPair,
    pub(crate) lid_user: String,
    /// The account's ADV id: the same in every device identity the phone
    /// signs and in its key-index list. Clients take a different one for a
    /// re-registered account and drop what they knew of its devices.
    pub(crate) adv_raw_id: u32,
    next_device: u16,
    next_key_index: u32,
    /// Companions by device id. Changed only through `add_companion` and
    /// `remove_companion`, which keep `device_list_changed_at` true.
    linked: BTreeMap<u16, LinkedDevice>,
    /// When the set of linked companions last changed (unix seconds): the
    /// timestamp of the phone's signed key-index list.
    device_list_changed_at: u64,
}

impl PhoneRecord {
    fn new() -> Self {
        Self {
            identity: wacore::crypto::generate_curve_key_pair(),
            lid_user: format!(
                "{}",
                rand::random_range(100_000_000_000_000u64..999_999_999_999_999)
            ),
            adv_raw_id: rand::random(),
            next_device: 1,
            next_key_index: 1,
            linked: BTreeMap::new(),
            device_list_changed_at: unix_now(),
        }
    }

    pub(crate) fn companions(&self) -> &BTreeMap<u16, LinkedDevice> {
        &self.linked
    }

    pub(crate) fn companion_mut(&mut self, device: u16) -> Option<&mut LinkedDevice> {
        self.linked.get_mut(&device)
    }

    fn add_companion(&mut self, device: u16, linked: LinkedDevice) {
        self.linked.insert(device, linked);
        self.device_list_changed_at = unix_now();
    }

    pub(crate) fn remove_companion(&mut self, device: u16) -> Option<LinkedDevice> {
        let removed = self.linked.remove(&device);
        if removed.is_some() {
            self.device_list_changed_at = unix_now();
        }
        removed
    }

    /// The highest key index the phone has issued, linked or not (0 before
    /// the first).
    pub(crate) fn current_key_index(&self) -> u32 {
        self.next_key_index - 1
    }

    pub(crate) fn device_list_changed_at(&self) -> u64 {
        self.device_list_changed_at
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) latency: Duration,
    /// Every connection is cut as soon as it opens.
    pub(crate) unreachable: bool,
    pub(crate) logout_reply: LogoutReply,
    pub(crate) client_outdated: bool,
    pub(crate) refuse_logins_with_503: u32,
    /// Device JID (as a string) to (ban code, end of the ban).
    pub(crate) bans: HashMap<String, (u32, Instant)>,
    /// Device JIDs (as strings) whose logins get `<failure reason="403"/>`.
    pub(crate) locked: std::collections::HashSet<String>,
    /// Phone numbers whose pairing code requests are refused with
    /// `429 rate-overlimit`.
    pub(crate) throttled_code_numbers: std::collections::HashSet<String>,
}

pub(crate) struct SimState {
    /// Signs every server key's certificate chain; never rotates.
    pub(crate) cert_root: CertRoot,
    pub(crate) identity: ServerIdentity,
    pub(crate) phones: HashMap<String, PhoneRecord>,
    pub(crate) sessions: HashMap<u64, SessionEntry>,
    pub(crate) faults: Faults,
    pub(crate) events: Vec<SimEvent>,
}

pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    state: Mutex<SimState>,
    changed: watch::Sender<u64>,
    next_id: AtomicU64,
}

/// The simulated WhatsApp service. Cheap to clone; every clone is the same
/// simulator.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Inner>,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let (changed, _) = watch::channel(0);
        let cert_root = CertRoot::generate();
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(SimState {
                    identity: ServerIdentity::generate(&cert_root),
                    cert_root,
                    phones: HashMap::new(),
                    sessions: HashMap::new(),
                    faults: Faults::default(),
                    events: Vec::new(),
                }),
                changed,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The root key of the server's Noise certificate chain (Curve25519,
    /// 32 bytes): what a client that verifies the chain must trust instead
    /// of WhatsApp's root.
    pub fn cert_root_key(&self) -> [u8; 32] {
        self.read_state(|s| s.cert_root.public_key())
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// A transport factory for `Bot::builder().with_transport_factory(..)`:
    /// every connection the client opens is served in process.
    pub fn transport_factory(&self) -> crate::in_process::InProcessTransportFactory {
        crate::in_process::InProcessTransportFactory::new(self.clone())
    }

    /// The simulated primary phone for `number` (digits only), created with a
    /// fresh identity key on first use.
    pub fn phone(&self, number: &str) -> Phone {
        let number: String = number.chars().filter(char::is_ascii_digit).collect();
        self.with_state(|state| {
            state
                .phones
                .entry(number.clone())
                .or_insert_with(PhoneRecord::new);
        });
        Phone {
            sim: self.clone(),
            number,
        }
    }

    /// Numbers of the phones the simulator knows.
    pub fn phones(&self) -> Vec<String> {
        let mut numbers: Vec<String> = self.read_state(|s| s.phones.keys().cloned().collect());
        numbers.sort();
        numbers
    }

    /// Everything observed so far, oldest first.
    pub fn events(&self) -> Vec<SimEvent> {
        self.read_state(|s| s.events.clone())
    }

    /// Devices with a live, logged-in connection.
    pub fn online_devices(&self) -> Vec<Jid> {
        self.read_state(|s| {
            s.sessions
                .values()
                .filter_map(|entry| match &entry.role {
                    SessionRole::LoggedIn { jid } => Some(jid.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    /// Number of live connections, in any state.
    pub fn connection_count(&self) -> usize {
        self.read_state(|s| s.sessions.len())
    }

    /// Waits until `jid` has a logged-in connection.
    pub async fn wait_for_connected(
        &self,
        jid: &Jid,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        let jid = jid.clone();
        self.wait_until(timeout, &format!("{jid} to log in"), |sim| {
            sim.online_devices().contains(&jid)
        })
        .await
    }

    /// Waits until `jid` has no live connection.
    pub async fn wait_for_offline(&self, jid: &Jid, timeout: Duration) -> Result<(), WaitTimeout> {
        let jid = jid.clone();
        self.wait_until(timeout, &format!("{jid} to go offline"), |sim| {
            !sim.online_devices().contains(&jid)
        })
        .await
    }

    /// Waits for the first event (in the whole history) that `matches`.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&SimEvent) -> bool,
    ) -> Result<SimEvent, WaitTimeout> {
        let mut found = None;
        self.wait_until(timeout, what, |sim| {
            found = sim.events().into_iter().find(|e| matches(e));
            found.is_some()
        })
        .await?;
        found.ok_or_else(|| WaitTimeout(timeout, what.to_string()))
    }

    /// Polls `condition` on every state change until it holds.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&Simulator) -> bool,
    ) -> Result<(), WaitTimeout> {
        let mut changes = self.inner.changed.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return if condition(self) {
                        Ok(())
                    } else {
                        Err(WaitTimeout(timeout, what.to_string()))
                    };
                }
            }
        }
    }

    // ---- fault injection -------------------------------------------------

    /// Cuts every live connection without a word, as a network failure would.
    pub fn drop_connections(&self) {
        self.broadcast(|_| true, || SessionCommand::Drop);
    }

    /// Live connections stop answering anything (keepalives included) but
    /// stay open; new connections are served normally.
    pub fn stall(&self) {
        self.broadcast(|_| true, || SessionCommand::Stall);
    }

    /// Ends `jid`'s connection with `<conflict type="replaced"/>`, as when
    /// the same device logs in elsewhere. Returns whether it was online.
    pub fn replace(&self, jid: &Jid) -> bool {
        let node = stream_error_conflict("replaced");
        self.broadcast(
            |role| matches!(role, SessionRole::LoggedIn { jid: j } if j == jid),
            || SessionCommand::End(Some(node.clone())),
        ) > 0
    }

    /// Bans `jid` for `duration`: its current connection is dropped and
    /// its logins until then get `<failure reason="402" code=.. expire=..>`.
    pub fn ban(&self, jid: &Jid, code: u32, duration: Duration) {
        self.with_state(|s| {
            s.faults
                .bans
                .insert(jid.to_string(), (code, Instant::now() + duration));
        });
        self.broadcast(
            |role| matches!(role, SessionRole::LoggedIn { jid: j } if j == jid),
            || SessionCommand::Drop,
        );
    }

    /// While on, every login gets `<failure reason="405"/>` (client too old);
    /// turning it on drops the connections that are logged in.
    pub fn set_client_outdated(&self, outdated: bool) {
        self.with_state(|s| s.faults.client_outdated = outdated);
        if outdated {
            self.broadcast(
                |role| matches!(role, SessionRole::LoggedIn { .. }),
                || SessionCommand::Drop,
            );
        }
    }

    /// Locks `jid` (WhatsApp's "account locked"): its current connection is
    /// dropped and its logins get `<failure reason="403"/>`, which the client
    /// takes as a logout.
    pub fn lock_account(&self, jid: &Jid) {
        self.with_state(|s| {
            s.faults.locked.insert(jid.to_string());
        });
        self.broadcast(
            |role| matches!(role, SessionRole::LoggedIn { jid: j } if j == jid),
            || SessionCommand::Drop,
        );
    }

    /// The next `count` logins get `<failure reason="503"/>` (service
    /// unavailable; the client retries).
    pub fn fail_next_logins_with_503(&self, count: u32) {
        self.with_state(|s| s.faults.refuse_logins_with_503 = count);
    }

    /// Sends `<stream:error code="503"/>` on every logged-in connection.
    pub fn stream_error_503(&self) {
        let node = NodeBuilder::new("stream:error").attr("code", "503").build();
        self.broadcast(
            |role| matches!(role, SessionRole::LoggedIn { .. }),
            || SessionCommand::End(Some(node.clone())),
        );
    }

    /// While `on`, pairing code requests for `phone` (digits) are refused
    /// with `429 rate-overlimit`, as WhatsApp does when a number asks for
    /// codes too often.
    pub fn throttle_pairing_codes(&self, phone: &str, on: bool) {
        self.with_state(|s| {
            if on {
                s.faults.throttled_code_numbers.insert(phone.to_owned());
            } else {
                s.faults.throttled_code_numbers.remove(phone);
            }
        });
    }

    /// How the next `<remove-companion-device>` IQs are answered.
    pub fn set_logout_reply(&self, reply: LogoutReply) {
        self.with_state(|s| s.faults.logout_reply = reply);
    }

    /// While `on`, the server cannot be reached: live connections are cut
    /// and new ones are closed as soon as they open, before any handshake.
    pub fn set_unreachable(&self, on: bool) {
        self.with_state(|s| s.faults.unreachable = on);
        if on {
            self.drop_connections();
        }
    }

    /// Every companion linked to any phone, with its phone number.
    pub fn linked_companions(&self) -> Vec<(String, LinkedDevice)> {
        self.read_state(|s| {
            let mut all: Vec<(String, LinkedDevice)> = s
                .phones
                .iter()
                .flat_map(|(number, phone)| {
                    phone
                        .linked
                        .values()
                        .map(move |device| (number.clone(), device.clone()))
                })
                .collect();
            all.sort_by_key(|(_, device)| device.jid.to_string());
            all
        })
    }

    /// Delay added before every frame the server sends.
    pub fn set_latency(&self, latency: Duration) {
        self.with_state(|s| s.faults.latency = latency);
    }

    /// Replaces the server's Noise static key. Clients that cached the old
    /// one try IK, fail, and complete the XX-fallback handshake.
    pub fn rotate_server_key(&self) {
        self.with_state(|s| s.identity = ServerIdentity::generate(&s.cert_root));
    }

    /// Clears every injected fault (latency, bans, 405, 503, logout reply).
    pub fn clear_faults(&self) {
        self.with_state(|s| s.faults = Faults::default());
    }

    /// Injects `fault`; fails only on a malformed JID.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        let parse = |jid: &str| jid.parse::<Jid>().map_err(|_| format!("not a JID: {jid}"));
        match fault {
            Fault::DropConnections => self.drop_connections(),
            Fault::Stall => self.stall(),
            Fault::Replace { jid } => {
                self.replace(&parse(&jid)?);
            }
            Fault::Ban { jid, code, seconds } => {
                self.ban(&parse(&jid)?, code, Duration::from_secs(seconds));
            }
            Fault::ClientOutdated { on } => self.set_client_outdated(on),
            Fault::LockAccount { jid } => self.lock_account(&parse(&jid)?),
            Fault::FailLogins503 { count } => self.fail_next_logins_with_503(count),
            Fault::StreamError503 => self.stream_error_503(),
            Fault::LogoutReply { reply } => self.set_logout_reply(reply),
            Fault::Latency { ms } => self.set_latency(Duration::from_millis(ms)),
            Fault::RotateServerKey => self.rotate_server_key(),
            Fault::Unreachable { on } => self.set_unreachable(on),
            Fault::Clear => self.clear_faults(),
        }
        Ok(())
    }

    // ---- internals ------------------------------------------------------

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` under the state lock and wakes every waiter afterwards. The
    /// lock is never held across an await.
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut SimState) -> T) -> T {
        let result = {
            let mut guard = self.lock();
            f(&mut guard)
        };
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
        result
    }

    /// Reads under the state lock without waking waiters (a waiter's own
    /// check must not count as a change).
    pub(crate) fn read_state<T>(&self, f: impl FnOnce(&SimState) -> T) -> T {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic elsewhere must not take the whole simulator down with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record(&self, event: SimEvent) {
        log::debug!("sim event: {event:?}");
        self.with_state(|s| s.events.push(event));
    }

    fn broadcast(
        &self,
        select: impl Fn(&SessionRole) -> bool,
        command: impl Fn() -> SessionCommand,
    ) -> usize {
        self.with_state(|s| {
            let mut sent = 0;
            for entry in s.sessions.values() {
                if select(&entry.role) && entry.commands.send(command()).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    }

    /// Serves one client connection until it ends.
    pub(crate) fn accept(&self, link: Link) {
        if self.read_state(|s| s.faults.unreachable) {
            let _ = link
                .outbound
                .send(crate::session::LinkOut::Close { abrupt: true });
            return;
        }
        let sim = self.clone();
        tokio::spawn(async move { session::run(sim, link).await });
    }

    pub(crate) fn latency(&self) -> Duration {
        self.read_state(|s| s.faults.latency)
    }
}

/// `<stream:error><conflict type=kind/></stream:error>`: "replaced" carries
/// no code (clients read that as 440, another login took over).
pub(crate) fn stream_error_conflict(kind: &str) -> wacore_binary::Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict").attr("type", kind).build()])
        .build()
}

/// What WhatsApp sends a device the phone unlinked: the code 401 is what
/// tells clients it is logged out (Baileys and whatsmeow read the code; a
/// code-less conflict is taken as "replaced").
pub(crate) fn stream_error_device_removed() -> wacore_binary::Node {
    NodeBuilder::new("stream:error")
        .attr("code", "401")
        .children([NodeBuilder::new("conflict")
            .attr("type", "device_removed")
            .build()])
        .build()
}

/// A simulated primary phone. Cheap to clone.
#[derive(Clone)]
pub struct Phone {
    sim: Simulator,
    number: String,
}

/// Fields of a scanned QR code that the phone uses.
struct ScannedQr {
    reference: String,
    noise_key: [u8; 32],
    identity_key: [u8; 32],
    adv_secret: [u8; 32],
}

/// The link form of a QR code (what Baileys and WhatsApp Web show): the
/// phone's camera opens it as a deep link to the linked-devices screen.
const QR_LINK_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// `ref,noise,identity,adv[,platform]`, bare or after [`QR_LINK_PREFIX`].
/// The fifth field is the companion's platform id (a number); the phone
/// only shows it, so it is checked for form and not kept.
fn parse_qr(qr: &str) -> Result<ScannedQr, PhoneError> {
    let qr = qr.trim();
    let qr = qr.strip_prefix(QR_LINK_PREFIX).unwrap_or(qr);
    let fields: Vec<&str> = qr.split(',').collect();
    if !(4..=5).contains(&fields.len()) || fields.iter().any(|f| f.is_empty()) {
        return Err(PhoneError::MalformedQr);
    }
    if fields.len() == 5 && !fields[4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::MalformedQr);
    }
    let key = |field: &str| -> Result<[u8; 32], PhoneError> {
        BASE64
            .decode(field)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(PhoneError::MalformedQr)
    };
    Ok(ScannedQr {
        reference: fields[0].to_string(),
        noise_key: key(fields[1])?,
        identity_key: key(fields[2])?,
        adv_secret: key(fields[3])?,
    })
}

/// What the phone needs to send `pair-success` to a waiting companion.
pub(crate) struct LinkTicket {
    pub(crate) session: u64,
    pub(crate) commands: mpsc::UnboundedSender<SessionCommand>,
    pub(crate) companion_identity: [u8; 32],
    pub(crate) noise_key: [u8; 32],
    pub(crate) adv_secret: [u8; 32],
    pub(crate) with: &'static str,
}

impl Phone {
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The phone's account JID, `number@s.whatsapp.net`.
    pub fn jid(&self) -> Jid {
        Jid::pn(self.number.as_str())
    }

    /// Companions currently linked to this phone.
    pub fn linked_devices(&self) -> Vec<LinkedDevice> {
        self.sim.read_state(|s| {
            s.phones
                .get(&self.number)
                .map(|p| p.linked.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Scans a companion's QR code: checks the ref is live and the phone has
    /// room, sends `pair-success` signed with this phone's identity key and
    /// MACed with the QR's ADV secret, and waits for the companion to sign
    /// it back. Returns the new device's JID.
    pub async fn scan(&self, qr: &str) -> Result<Jid, PhoneError> {
        let scanned = parse_qr(qr)?;
        let now = Instant::now();
        let max = self.sim.inner.config.max_companions;
        let ticket = self.sim.with_state(|s| {
            let linked = s.phones.get(&self.number).map_or(0, |p| p.linked.len());
            let (id, entry) = s
                .sessions
                .iter_mut()
                .find(|(_, entry)| match &entry.role {
                    SessionRole::Registering(r) => {
                        r.qr_refs.iter().any(|q| q.value == scanned.reference)
                    }
                    _ => false,
                })
                .ok_or(PhoneError::UnknownQr)?;
            let SessionRole::Registering(registration) = &mut entry.role else {
                return Err(PhoneError::UnknownQr);
            };
            if registration.noise_key != scanned.noise_key
                || registration.identity_key != scanned.identity_key
            {
                return Err(PhoneError::UnknownQr);
            }
            let live = registration
                .qr_refs
                .iter()
                .any(|q| q.value == scanned.reference && q.expires_at > now);
            if !live {
                return Err(PhoneError::ExpiredQr);
            }
            if linked >= max {
                return Err(PhoneError::DeviceLimit(max));
            }
            if registration.linking {
                return Err(PhoneError::UnknownQr);
            }
            registration.linking = true;
            Ok(LinkTicket {
                session: *id,
                commands: entry.commands.clone(),
                companion_identity: scanned.identity_key,
                noise_key: scanned.noise_key,
                adv_secret: scanned.adv_secret,
                with: "qr",
            })
        })?;
        self.link(ticket).await
    }

    /// Types `code` (as shown by the companion, dashes optional) into the
    /// phone: sends `primary_hello`, then waits for the companion's key
    /// bundle. A wrong code is detected when that bundle fails to open; the
    /// companion's `companion_finish` is then refused and nothing is linked.
    pub async fn enter_code(&self, code: &str) -> Result<Jid, PhoneError> {
        let code: String = code
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let now = Instant::now();
        let max = self.sim.inner.config.max_companions;
        let (session, commands, wrapped, reference) = self.sim.with_state(|s| {
            let linked = s.phones.get(&self.number).map_or(0, |p| p.linked.len());
            let mut expired = false;
            let mut found = None;
            for (id, entry) in &s.sessions {
                if let SessionRole::Registering(r) = &entry.role
                    && let Some(pending) = &r.code
                    && pending.phone == self.number
                    && !r.linking
                {
                    if pending.expires_at <= now {
                        expired = true;
                        continue;
                    }
                    found = Some((
                        *id,
                        entry.commands.clone(),
                        pending.wrapped_companion_ephemeral.clone(),
                        pending.reference.clone(),
                    ));
                }
            }
            match found {
                Some(_) if linked >= max => Err(PhoneError::DeviceLimit(max)),
                Some(found) => Ok(found),
                None if expired => Err(PhoneError::ExpiredCode),
                None => Err(PhoneError::NoPendingCode),
            }
        })?;

        let hello =
            tokio::task::spawn_blocking(move || phone_crypto::primary_hello(&wrapped, &code))
                .await
                .map_err(|_| PhoneError::CompanionGone)?;
        let wrapped_primary = hello.wrapped_ephemeral;
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let identity_public = self.sim.with_state(|s| {
            let entry = s
                .sessions
                .get_mut(&session)
                .ok_or(PhoneError::CompanionGone)?;
            let SessionRole::Registering(r) = &mut entry.role else {
                return Err(PhoneError::CompanionGone);
            };
            let pending = r.code.as_mut().ok_or(PhoneError::CompanionGone)?;
            pending.primary = Some(PrimaryWaiting {
                hello,
                outcome: outcome_tx,
            });
            s.phones
                .get(&self.number)
                .map(|p| p.identity.public_key.public_key_bytes().to_vec())
                .ok_or(PhoneError::CompanionGone)
        })?;
        let notification = NodeBuilder::new("notification")
            .attr("from", "s.whatsapp.net")
            .attr("type", "link_code_companion_reg")
            .attr("id", format!("sim-{}", self.sim.next_id()))
            .attr("t", unix_now().to_string())
            .children([NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                        .bytes(wrapped_primary.to_vec())
                        .build(),
                    NodeBuilder::new("primary_identity_pub")
                        .bytes(identity_public)
                        .build(),
                    NodeBuilder::new("link_code_pairing_ref")
                        .bytes(reference)
                        .build(),
                ])
                .build()])
            .build();
        commands
            .send(SessionCommand::Send(notification))
            .map_err(|_| PhoneError::CompanionGone)?;
        // Covers both the companion's finish and its pair-success answer.
        let timeout = self.sim.inner.config.companion_reply_timeout * 2;
        match tokio::time::timeout(timeout, outcome_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(PhoneError::CompanionGone),
            Err(_) => Err(PhoneError::CompanionTimeout),
        }
    }

    /// Unlinks `jid` from the phone. A live connection of that device is
    /// ended with `<stream:error code="401"><conflict type="device_removed"/>`; later logins with its
    /// credentials get `<failure reason="401"/>`.
    pub fn remove_device(&self, jid: &Jid) -> Result<(), PhoneError> {
        self.sim.with_state(|s| {
            let phone = s
                .phones
                .get_mut(&self.number)
                .ok_or_else(|| PhoneError::UnknownDevice(jid.to_string()))?;
            let device = phone
                .linked
                .values()
                .find(|d| d.jid == *jid)
                .map(|d| d.jid.device)
                .ok_or_else(|| PhoneError::UnknownDevice(jid.to_string()))?;
            phone.remove_companion(device);
            for entry in s.sessions.values() {
                if matches!(&entry.role, SessionRole::LoggedIn { jid: j } if j == jid) {
                    let _ = entry
                        .commands
                        .send(SessionCommand::End(Some(stream_error_device_removed())));
                }
            }
            s.events.push(SimEvent::Unlinked {
                jid: jid.to_string(),
                by: "phone",
            });
            Ok(())
        })
    }

    /// Sends `pair-success` for `ticket`, waits for `pair-device-sign`, and
    /// records the link.
    pub(crate) async fn link(&self, ticket: LinkTicket) -> Result<Jid, PhoneError> {
        let result = self.link_inner(&ticket).await;
        if result.is_err() {
            self.sim.with_state(|s| {
                if let Some(SessionEntry {
                    role: SessionRole::Registering(r),
                    ..
                }) = s.sessions.get_mut(&ticket.session)
                {
                    r.linking = false;
                }
            });
        }
        result
    }

    async fn link_inner(&self, ticket: &LinkTicket) -> Result<Jid, PhoneError> {
        let config = &self.sim.inner.config;
        let (device, key_index, lid_user, identity, adv_raw_id) = self.sim.with_state(|s| {
            let phone = s
                .phones
                .get_mut(&self.number)
                .ok_or(PhoneError::CompanionGone)?;
            let device = phone.next_device;
            phone.next_device = phone.next_device.wrapping_add(1).max(1);
            let key_index = phone.next_key_index;
            phone.next_key_index += 1;
            Ok::<_, PhoneError>((
                device,
                key_index,
                phone.lid_user.clone(),
                phone.identity.clone(),
                phone.adv_raw_id,
            ))
        })?;
        let jid = Jid::pn_device(self.number.as_str(), device);
        let lid = Jid::lid_device(lid_user.as_str(), device);
        let identity_bytes = phone_crypto::signed_device_identity(
            &identity,
            &ticket.companion_identity,
            &ticket.adv_secret,
            adv_raw_id,
            key_index,
            unix_now(),
        )?;
        let iq_id = format!("sim-{}", self.sim.next_id());
        let pair_success = NodeBuilder::new("iq")
            .attr("from", "s.whatsapp.net")
            .attr("type", "set")
            .attr("id", iq_id)
            .attr("xmlns", "md")
            .attr("t", unix_now().to_string())
            .children([NodeBuilder::new("pair-success")
                .children([
                    NodeBuilder::new("device-identity")
                        .attr("key-index", key_index.to_string())
                        .bytes(identity_bytes)
                        .build(),
                    NodeBuilder::new("device")
                        .attr("jid", jid.clone())
                        .attr("lid", lid.clone())
                        .build(),
                    NodeBuilder::new("biz")
                        .attr("name", config.push_name.clone())
                        .build(),
                    NodeBuilder::new("platform").attr("name", "android").build(),
                ])
                .build()])
            .build();
        // The link is recorded by the session itself, the moment the
        // companion's answer arrives: the companion may open its next
        // connection before this task runs again, and that login must find
        // the device linked.
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let record = LinkRecord {
            sim: self.sim.clone(),
            number: self.number.clone(),
            device,
            linked: LinkedDevice {
                jid: jid.clone(),
                lid,
                key_index,
                linked_with: ticket.with,
                pre_keys: 0,
                noise_key: ticket.noise_key,
                key_bundle: Default::default(),
            },
            companion_identity: ticket.companion_identity,
            phone_identity_public: identity.public_key.public_key_bytes().to_vec(),
            restart: ticket.commands.clone(),
        };
        let on_answer: AnswerHandler = Box::new(move |reply: Node| {
            let _ = outcome_tx.send(record.complete(&reply));
        });
        ticket
            .commands
            .send(SessionCommand::Request(pair_success, on_answer))
            .map_err(|_| PhoneError::CompanionGone)?;
        match tokio::time::timeout(config.companion_reply_timeout, outcome_rx).await {
            Ok(Ok(outcome)) => outcome?,
            Ok(Err(_)) => return Err(PhoneError::CompanionGone),
            Err(_) => return Err(PhoneError::CompanionTimeout),
        }
        Ok(jid)
    }
}

/// Everything needed to record a link once the companion signs
/// `pair-success`.
struct LinkRecord {
    sim: Simulator,
    number: String,
    device: u16,
    linked: LinkedDevice,
    companion_identity: [u8; 32],
    phone_identity_public: Vec<u8>,
    restart: mpsc::UnboundedSender<SessionCommand>,
}

impl LinkRecord {
    /// Checks the companion's answer and, if it signed, links the device and
    /// schedules the 515 stream restart.
    fn complete(self, reply: &Node) -> Result<(), PhoneError> {
        if reply.attrs.get("type").map(|v| v.as_str()).as_deref() != Some("result") {
            let code = reply
                .get_optional_child("error")
                .and_then(|e| e.attrs.get("code").map(|c| c.as_str().to_string()))
                .unwrap_or_else(|| "unknown".to_string());
            return Err(PhoneError::CompanionRejected(format!("error {code}")));
        }
        let signed = reply
            .get_optional_child_by_tag(&["pair-device-sign", "device-identity"])
            .and_then(|n| match &n.content {
                Some(wacore_binary::NodeContent::Bytes(b)) => Some(b.clone()),
                _ => None,
            })
            .ok_or_else(|| PhoneError::CompanionRejected("no pair-device-sign".into()))?;
        phone_crypto::verify_device_signature(
            &signed,
            &self.companion_identity,
            &self.phone_identity_public,
        )?;
        let max = self.sim.inner.config.max_companions;
        let with = self.linked.linked_with;
        let jid = self.linked.jid.to_string();
        self.sim.with_state(|s| {
            let phone = s
                .phones
                .get_mut(&self.number)
                .ok_or(PhoneError::CompanionGone)?;
            if phone.linked.len() >= max {
                return Err(PhoneError::DeviceLimit(max));
            }
            phone.add_companion(self.device, self.linked);
            s.events.push(SimEvent::Paired { jid, with });
            Ok(())
        })?;
        // The real server restarts the stream (515) once the companion has
        // signed; the client then logs in with its new identity.
        let _ = self.restart.send(SessionCommand::RestartAfterPairing);
        Ok(())
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn qr_fields() -> String {
        let key = BASE64.encode([1u8; 32]);
        format!("2@ref,{key},{key},{key}")
    }

    #[test]
    fn the_phone_reads_the_bare_and_the_link_form_of_a_qr_code() {
        let bare = qr_fields();
        for qr in [
            bare.clone(),
            format!("{bare},1"),
            format!("{QR_LINK_PREFIX}{bare},1"),
        ] {
            assert_eq!(parse_qr(&qr).unwrap().reference, "2@ref", "{qr}");
        }
        for qr in [
            format!("{bare},chrome"),
            format!("{bare},1,extra"),
            format!("{bare},"),
            "https://example.com/#2@ref".to_string(),
        ] {
            assert!(parse_qr(&qr).is_err(), "{qr}");
        }
    }

    #[test]
    fn a_removed_device_is_told_it_is_logged_out_with_code_401() {
        let node = stream_error_device_removed();
        assert_eq!(node.tag, "stream:error");
        assert_eq!(
            node.attrs
                .get("code")
                .map(|c| c.as_str().to_string())
                .as_deref(),
            Some("401")
        );
        let conflict = node.get_optional_child("conflict").unwrap();
        assert_eq!(
            conflict
                .attrs
                .get("type")
                .map(|t| t.as_str().to_string())
                .as_deref(),
            Some("device_removed")
        );
    }
}
