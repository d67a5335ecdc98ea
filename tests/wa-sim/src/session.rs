//! One client connection, from the first handshake byte to its end.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::consts::WA_CONN_HEADER;
use wacore_binary::{Jid, Node, NodeContent};
use wacore_noise::framing::{FrameDecoder, encode_frame};

use crate::error::{PhoneError, SimError};
use crate::noise::{self, Established, HelloReply, TransportCipher};
use crate::phone_crypto;
use crate::routine_iqs::{self, KeyBundle};
use crate::sim::{
    LinkTicket, LinkedDevice, LogoutReply, PendingCode, QrRef, Registration, SessionEntry,
    SessionRole, SimEvent, Simulator, unix_now,
};
use crate::usync::{self, Account, Refusal, UserKey};

/// The byte pipe between a client and its session, whatever carries it
/// (in-process channels or a WebSocket).
pub(crate) struct Link {
    /// Bytes the client sent; `None` once the client has gone.
    pub(crate) inbound: mpsc::UnboundedReceiver<Bytes>,
    pub(crate) outbound: mpsc::UnboundedSender<LinkOut>,
}

pub(crate) enum LinkOut {
    Data(Bytes),
    /// Close the connection; `abrupt` means without a closing handshake, as
    /// a network failure looks to the client.
    Close {
        abrupt: bool,
    },
}

/// Runs on the answer to a server-sent IQ.
pub(crate) type AnswerHandler = Box<dyn FnOnce(Node) + Send + Sync>;

/// Orders the simulator (a test, the phone) gives a live session.
pub(crate) enum SessionCommand {
    Send(Node),
    /// Send an IQ and run the handler on its answer (`result` or `error`),
    /// inside the session, before any later frame is read.
    Request(Node, AnswerHandler),
    /// Send the node if any, then close the connection.
    End(Option<Node>),
    /// Close the connection abruptly.
    Drop,
    /// Stop answering anything; the connection stays open.
    Stall,
    /// Pairing is complete: restart the stream (515) shortly.
    RestartAfterPairing,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Without this pause the client can process the 515 before its own
/// pair-device-sign bookkeeping and ignore the next `<success>`.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// Strips the connection header (and an optional edge-routing pre-intro) off
/// the first bytes, then splits the stream into frames. The header is kept:
/// it is the Noise prologue both sides hash.
struct InboundFramer {
    header: Option<Vec<u8>>,
    prologue: Option<[u8; 4]>,
    decoder: FrameDecoder,
}

impl InboundFramer {
    fn new() -> Self {
        Self {
            header: Some(Vec::new()),
            prologue: None,
            decoder: FrameDecoder::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), SimError> {
        let Some(header) = self.header.as_mut() else {
            self.decoder.feed(data);
            return Ok(());
        };
        header.extend_from_slice(data);
        let mut skip = 0;
        if header.starts_with(b"ED\x00\x01") {
            if header.len() < 7 {
                return Ok(());
            }
            let routing_len = (usize::from(header[4]) << 16)
                | (usize::from(header[5]) << 8)
                | usize::from(header[6]);
            skip = 7 + routing_len;
        }
        if header.len() < skip + 4 {
            return Ok(());
        }
        let prologue: [u8; 4] = header[skip..skip + 4]
            .try_into()
            .expect("four bytes were just checked");
        check_connection_header(prologue)?;
        let rest = header.split_off(skip + 4);
        self.header = None;
        self.prologue = Some(prologue);
        self.decoder.feed(&rest);
        Ok(())
    }

    fn next_frame(&mut self) -> Option<BytesMut> {
        if self.header.is_some() {
            return None;
        }
        self.decoder.decode_frame()
    }
}

/// `WA`, the protocol's magic byte, then the binary-node dictionary version.
/// A client that speaks another dictionary could complete the handshake
/// (the prologue is whatever it sent) but not one node after it, so it is
/// refused here, with the reason in a `session_failed` event.
fn check_connection_header(header: [u8; 4]) -> Result<(), SimError> {
    let [w, a, magic, dictionary] = header;
    if [w, a] != *b"WA" {
        return Err(SimError::Protocol("missing WA connection header".into()));
    }
    if magic != WA_CONN_HEADER[2] {
        return Err(SimError::Protocol(format!(
            "unsupported protocol version {magic} in the connection header (simulated: {})",
            WA_CONN_HEADER[2]
        )));
    }
    if dictionary != WA_CONN_HEADER[3] {
        return Err(SimError::Protocol(format!(
            "unsupported dictionary version {dictionary} in the connection header (simulated: {})",
            WA_CONN_HEADER[3]
        )));
    }
    Ok(())
}

enum Input {
    Frame(BytesMut),
    Command(SessionCommand),
    Closed,
    Failed(SimError),
}

enum Flow {
    Continue,
    Stop { abrupt: bool },
}

struct Session {
    sim: Simulator,
    id: u64,
    inbound: mpsc::UnboundedReceiver<Bytes>,
    outbound: mpsc::UnboundedSender<LinkOut>,
    commands: mpsc::UnboundedReceiver<SessionCommand>,
    own_commands: mpsc::UnboundedSender<SessionCommand>,
    framer: InboundFramer,
    cipher: Option<TransportCipher>,
    stalled: bool,
    awaiting_answer: HashMap<String, AnswerHandler>,
    jid: Option<Jid>,
    stage: Stage,
}

/// How far a connection got; named in `session_failed` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading the connection header and the client's hello.
    Header,
    /// The Noise handshake.
    Handshake,
    /// Encrypted nodes after the handshake.
    Transport,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Header => "header",
            Stage::Handshake => "handshake",
            Stage::Transport => "transport",
        }
    }
}

pub(crate) async fn run(sim: Simulator, link: Link) {
    let id = sim.next_id();
    let (own_commands, commands) = mpsc::unbounded_channel();
    sim.with_state(|s| {
        s.sessions.insert(
            id,
            SessionEntry {
                commands: own_commands.clone(),
                role: SessionRole::Handshaking,
            },
        )
    });
    let mut session = Session {
        sim: sim.clone(),
        id,
        inbound: link.inbound,
        outbound: link.outbound,
        commands,
        own_commands,
        framer: InboundFramer::new(),
        cipher: None,
        stalled: false,
        awaiting_answer: HashMap::new(),
        jid: None,
        stage: Stage::Header,
    };
    let abrupt = match session.serve().await {
        Ok(abrupt) => abrupt,
        Err(SimError::Closed) if session.stage == Stage::Transport => true,
        Err(e) => {
            // A client that hangs up mid-handshake (e.g. it rejected the
            // certificate chain) is a failure too: that is its only trace.
            let stage = session.stage.name();
            let reason = match e {
                SimError::Closed => "the client closed the connection".to_string(),
                e => e.to_string(),
            };
            log::warn!("session {id} failed at the {stage}: {reason}");
            sim.record(SimEvent::SessionFailed {
                session: id,
                stage,
                reason,
            });
            true
        }
    };
    let _ = session.outbound.send(LinkOut::Close { abrupt });
    let jid = session.jid.as_ref().map(ToString::to_string);
    sim.with_state(|s| {
        s.sessions.remove(&id);
        s.events.push(SimEvent::SessionClosed { session: id, jid });
    });
}

impl Session {
    /// Returns whether the connection should end abruptly.
    async fn serve(&mut self) -> Result<bool, SimError> {
        let Some(established) = self.handshake().await? else {
            if self.stalled {
                return self.stay_silent().await;
            }
            return Ok(true);
        };
        if let Flow::Stop { abrupt } = self.start(established).await? {
            return Ok(abrupt);
        }
        loop {
            let flow = match self.next_input().await {
                Input::Closed => return Err(SimError::Closed),
                Input::Failed(e) => return Err(e),
                Input::Frame(frame) => self.handle_frame(&frame).await?,
                Input::Command(command) => self.handle_command(command).await?,
            };
            if let Flow::Stop { abrupt } = flow {
                return Ok(abrupt);
            }
        }
    }

    /// A stalled connection ignores everything until it is closed or told
    /// to end.
    async fn stay_silent(&mut self) -> Result<bool, SimError> {
        loop {
            match self.next_input().await {
                Input::Closed | Input::Failed(_) => return Err(SimError::Closed),
                Input::Command(SessionCommand::Drop) => return Ok(true),
                Input::Command(SessionCommand::End(_)) => return Ok(false),
                Input::Frame(_) | Input::Command(_) => {}
            }
        }
    }

    async fn next_input(&mut self) -> Input {
        if let Some(frame) = self.framer.next_frame() {
            return Input::Frame(frame);
        }
        loop {
            tokio::select! {
                data = self.inbound.recv() => match data {
                    None => return Input::Closed,
                    Some(data) => {
                        if let Err(e) = self.framer.feed(&data) {
                            return Input::Failed(e);
                        }
                        if let Some(frame) = self.framer.next_frame() {
                            return Input::Frame(frame);
                        }
                    }
                },
                command = self.commands.recv() => match command {
                    Some(command) => return Input::Command(command),
                    None => return Input::Closed,
                },
            }
        }
    }

    /// Reads handshake frames, answering commands that end the connection.
    /// `None` means the connection was ended by a command meanwhile.
    async fn next_handshake_frame(&mut self) -> Result<Option<BytesMut>, SimError> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let input = tokio::time::timeout_at(deadline, self.next_input())
                .await
                .map_err(|_| SimError::Handshake("client went silent".into()))?;
            match input {
                Input::Frame(frame) => return Ok(Some(frame)),
                Input::Closed => return Err(SimError::Closed),
                Input::Failed(e) => return Err(e),
                Input::Command(SessionCommand::Drop | SessionCommand::End(_)) => return Ok(None),
                Input::Command(SessionCommand::Stall) => {
                    self.stalled = true;
                    return Ok(None);
                }
                Input::Command(_) => {}
            }
        }
    }

    async fn handshake(&mut self) -> Result<Option<Established>, SimError> {
        let Some(hello) = self.next_handshake_frame().await? else {
            return Ok(None);
        };
        self.stage = Stage::Handshake;
        let identity = self.sim.read_state(|s| s.identity.clone());
        let prologue = self
            .framer
            .prologue
            .ok_or_else(|| SimError::Protocol("handshake before the connection header".into()))?;
        match noise::answer_client_hello(&identity, prologue, &hello)? {
            HelloReply::Done {
                server_hello,
                established,
            } => {
                self.send_raw(&server_hello).await?;
                Ok(Some(*established))
            }
            HelloReply::AwaitFinish {
                server_hello,
                state,
            } => {
                self.send_raw(&server_hello).await?;
                let Some(finish) = self.next_handshake_frame().await? else {
                    return Ok(None);
                };
                Ok(Some(state.read_client_finish(&finish)?))
            }
        }
    }

    async fn send_raw(&mut self, payload: &[u8]) -> Result<(), SimError> {
        self.delay().await;
        let framed =
            encode_frame(payload, None).map_err(|e| SimError::Protocol(format!("framing: {e}")))?;
        self.write(framed);
        Ok(())
    }

    /// Hands a frame to the link. A client that hung up can no longer be
    /// written to, but what it sent before hanging up is still read and
    /// acted on (a logout IQ followed at once by a close must unlink, as
    /// WhatsApp does); the session ends when the inbound side runs dry.
    fn write(&mut self, framed: Vec<u8>) {
        let _ = self.outbound.send(LinkOut::Data(Bytes::from(framed)));
    }

    async fn delay(&self) {
        let latency = self.sim.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    async fn send_node(&mut self, node: &Node) -> Result<(), SimError> {
        self.delay().await;
        let plaintext = wacore_binary::marshal::marshal(node)
            .map_err(|e| SimError::Protocol(format!("marshal: {e}")))?;
        let cipher = self
            .cipher
            .as_mut()
            .ok_or_else(|| SimError::Protocol("node before handshake".into()))?;
        let ciphertext = cipher.encrypt(&plaintext)?;
        let framed = encode_frame(&ciphertext, None)
            .map_err(|e| SimError::Protocol(format!("framing: {e}")))?;
        self.write(framed);
        Ok(())
    }

    /// Registration (QR refs) for a new device, or the login checks for a
    /// paired one.
    async fn start(&mut self, established: Established) -> Result<Flow, SimError> {
        self.stage = Stage::Transport;
        self.cipher = Some(established.cipher);
        let payload = established.payload;
        if let Some(pairing) = payload.device_pairing_data.as_option() {
            let identity_key: [u8; 32] = pairing
                .e_ident
                .as_deref()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| SimError::Protocol("registration without identity key".into()))?;
            return self
                .start_registration(established.client_static, identity_key, established.kind)
                .await;
        }
        let phone = payload.username.map(|u| u.to_string()).unwrap_or_default();
        let device = payload
            .device
            .and_then(|d| u16::try_from(d).ok())
            .unwrap_or(0);
        self.login(phone, device, established.client_static, established.kind)
            .await
    }

    async fn start_registration(
        &mut self,
        noise_key: [u8; 32],
        identity_key: [u8; 32],
        kind: noise::HandshakeKind,
    ) -> Result<Flow, SimError> {
        let config = self.sim.config().clone();
        let now = Instant::now();
        let qr_refs: Vec<QrRef> = (0..config.qr_ref_count)
            .map(|i| QrRef {
                value: format!("2@{}", random_token(24)),
                expires_at: now
                    + config.qr_first_ref_lifetime
                    + config.qr_next_ref_lifetime * u32::try_from(i).unwrap_or(u32::MAX),
            })
            .collect();
        let refs: Vec<Node> = qr_refs
            .iter()
            .map(|r| {
                NodeBuilder::new("ref")
                    .bytes(r.value.as_bytes().to_vec())
                    .build()
            })
            .collect();
        let id = self.id;
        self.sim.with_state(|s| {
            if let Some(entry) = s.sessions.get_mut(&id) {
                entry.role = SessionRole::Registering(Box::new(Registration {
                    noise_key,
                    identity_key,
                    qr_refs,
                    code: None,
                    linking: false,
                }));
            }
            s.events.push(SimEvent::RegistrationStarted {
                session: id,
                handshake: kind,
            });
        });
        let pair_device = NodeBuilder::new("iq")
            .attr("from", "s.whatsapp.net")
            .attr("type", "set")
            .attr("id", format!("sim-{}", self.sim.next_id()))
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-device").children(refs).build()])
            .build();
        self.send_node(&pair_device).await?;
        Ok(Flow::Continue)
    }

    async fn login(
        &mut self,
        phone: String,
        device: u16,
        noise_key: [u8; 32],
        kind: noise::HandshakeKind,
    ) -> Result<Flow, SimError> {
        let jid = Jid::pn_device(phone.as_str(), device);
        let jid_text = jid.to_string();
        let now = Instant::now();
        let id = self.id;
        let verdict = self.sim.with_state(|s| {
            if s.faults.client_outdated {
                return Err(failure("405"));
            }
            if let Some((code, until)) = s.faults.bans.get(&jid_text)
                && *until > now
            {
                let expire = until.duration_since(now).as_secs().max(1);
                return Err(Box::new(
                    NodeBuilder::new("failure")
                        .attr("reason", "402")
                        .attr("code", code.to_string())
                        .attr("expire", expire.to_string()),
                ));
            }
            if s.faults.locked.contains(&jid_text) {
                return Err(failure("403"));
            }
            if s.faults.refuse_logins_with_503 > 0 {
                s.faults.refuse_logins_with_503 -= 1;
                return Err(failure("503"));
            }
            let linked = s.phones.get(&phone).and_then(|p| {
                p.companions()
                    .get(&device)
                    .map(|d| (d.noise_key, d.lid.clone()))
            });
            match linked {
                Some((key, lid)) if key == noise_key && device != 0 => {
                    if let Some(entry) = s.sessions.get_mut(&id) {
                        entry.role = SessionRole::LoggedIn { jid: jid.clone() };
                    }
                    s.events.push(SimEvent::LoggedIn {
                        session: id,
                        jid: jid_text.clone(),
                        handshake: kind,
                    });
                    Ok(lid)
                }
                _ => Err(failure("401")),
            }
        });
        match verdict {
            Ok(lid) => {
                self.jid = Some(jid);
                let success = NodeBuilder::new("success")
                    .attr("t", unix_now().to_string())
                    .attr("lid", lid)
                    .attr("props", "1")
                    .build();
                self.send_node(&success).await?;
                let offline = NodeBuilder::new("ib")
                    .attr("from", "s.whatsapp.net")
                    .children([NodeBuilder::new("offline").attr("count", "0").build()])
                    .build();
                self.send_node(&offline).await?;
                Ok(Flow::Continue)
            }
            Err(refusal) => {
                let node = (*refusal).build();
                let reason = node
                    .attrs
                    .get("reason")
                    .and_then(|r| r.as_str().parse().ok())
                    .unwrap_or(0);
                self.sim.record(SimEvent::LoginRefused {
                    phone,
                    device,
                    reason,
                });
                self.send_node(&node).await?;
                Ok(Flow::Stop { abrupt: false })
            }
        }
    }

    async fn handle_frame(&mut self, frame: &[u8]) -> Result<Flow, SimError> {
        if self.stalled {
            return Ok(Flow::Continue);
        }
        let cipher = self
            .cipher
            .as_mut()
            .ok_or_else(|| SimError::Protocol("frame before handshake".into()))?;
        let plaintext = cipher.decrypt(frame)?;
        let unpacked = wacore_binary::util::unpack(&plaintext)
            .map_err(|e| SimError::Protocol(format!("unpack: {e}")))?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked)
            .map_err(|e| SimError::Protocol(format!("unmarshal: {e}")))?
            .to_owned();
        self.handle_node(node).await
    }

    async fn handle_command(&mut self, command: SessionCommand) -> Result<Flow, SimError> {
        match command {
            SessionCommand::Drop => return Ok(Flow::Stop { abrupt: true }),
            SessionCommand::End(node) => {
                if let Some(node) = node {
                    self.send_node(&node).await?;
                }
                return Ok(Flow::Stop { abrupt: false });
            }
            SessionCommand::Stall => self.stalled = true,
            _ if self.stalled => {}
            SessionCommand::Send(node) => self.send_node(&node).await?,
            SessionCommand::Request(node, answer) => {
                if let Some(id) = attr(&node, "id") {
                    self.awaiting_answer.insert(id, answer);
                }
                self.send_node(&node).await?;
            }
            SessionCommand::RestartAfterPairing => {
                let commands = self.own_commands.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RESTART_DELAY).await;
                    let restart = NodeBuilder::new("stream:error").attr("code", "515").build();
                    let _ = commands.send(SessionCommand::End(Some(restart)));
                });
            }
        }
        Ok(Flow::Continue)
    }

    async fn handle_node(&mut self, node: Node) -> Result<Flow, SimError> {
        match node.tag.as_ref() {
            "iq" => {
                let kind = attr(&node, "type").unwrap_or_default();
                if kind == "result" || kind == "error" {
                    if let Some(on_answer) =
                        attr(&node, "id").and_then(|id| self.awaiting_answer.remove(&id))
                    {
                        on_answer(node);
                    }
                    return Ok(Flow::Continue);
                }
                if let Some(reply) = self.answer_iq(&node).await? {
                    self.send_node(&reply).await?;
                }
            }
            "message" | "receipt" | "call" => {
                if let Some(id) = attr(&node, "id") {
                    let ack = NodeBuilder::new("ack")
                        .attr("id", id)
                        .attr("class", node.tag.to_string())
                        .attr("from", "s.whatsapp.net")
                        .attr("t", unix_now().to_string())
                        .build();
                    self.send_node(&ack).await?;
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// The server's answer to a client IQ. Anything not modelled gets a 501
    /// error: the client only logs those, and silence would cost it an IQ
    /// timeout (and, for some IQs, a reconnect).
    async fn answer_iq(&mut self, iq: &Node) -> Result<Option<Node>, SimError> {
        let id = attr(iq, "id").unwrap_or_default();
        let xmlns = attr(iq, "xmlns").unwrap_or_default();
        let kind = attr(iq, "type").unwrap_or_default();
        let child = iq.children().and_then(|c| c.first());
        let child_tag = child.map(|c| c.tag.to_string()).unwrap_or_default();
        let reply = match (xmlns.as_str(), child_tag.as_str()) {
            ("w:p" | "passive", _) => Some(result(&id).build()),
            ("md", "remove-companion-device") => self.answer_logout(&id),
            ("md", "link_code_companion_reg") => match child {
                Some(reg) => Some(self.answer_link_code(&id, reg)),
                None => Some(iq_error(&id, 400, "bad-request")),
            },
            ("w:sync:app:state", _) => Some(answer_app_state_sync(&id, child)),
            ("encrypt", "registration") => Some(self.answer_pre_key_upload(&id, iq)),
            ("encrypt", "count") => Some(self.answer_pre_key_count(&id)),
            ("encrypt", "digest") => Some(self.answer_digest(&id)),
            ("encrypt", "rotate") => Some(self.answer_rotate(&id, child)),
            ("abt", "props") => Some(result(&id).children([routine_iqs::ab_props()]).build()),
            ("blocklist", _) if kind == "get" => {
                Some(result(&id).children([routine_iqs::blocklist()]).build())
            }
            ("privacy", "privacy") if kind == "get" => Some(
                result(&id)
                    .children([routine_iqs::privacy_settings()])
                    .build(),
            ),
            ("usync", "usync") if kind == "get" => Some(self.answer_usync(&id, child)),
            _ => Some(self.not_modelled(&id, &xmlns, format!("<{child_tag}>"))),
        };
        Ok(reply)
    }

    /// 501, logged and recorded, for anything the simulator does not model.
    fn not_modelled(&self, id: &str, xmlns: &str, what: String) -> Node {
        log::info!(
            "session {}: iq xmlns={xmlns} {what} is not modelled, answered 501",
            self.id
        );
        self.sim.record(SimEvent::IqNotModelled {
            session: self.id,
            xmlns: xmlns.to_string(),
            what,
        });
        iq_error(id, 501, "feature-not-implemented")
    }

    /// A usync query, answered from the phones' current state. Only a
    /// logged-in device may ask.
    fn answer_usync(&mut self, id: &str, query: Option<&Node>) -> Node {
        let Some(jid) = self.jid.clone() else {
            return iq_error(id, 401, "not-authorized");
        };
        let Some(query) = query else {
            return iq_error(id, 400, "bad-request");
        };
        let answered = usync::answer(query, |key| {
            self.sim.read_state(|s| match key {
                UserKey::Number(number) => {
                    s.phones.get(number).map(|phone| Account::of(number, phone))
                }
                UserKey::Lid(lid_user) => s
                    .phones
                    .iter()
                    .find(|(_, phone)| phone.lid_user == lid_user)
                    .map(|(number, phone)| Account::of(number, phone)),
            })
        });
        match answered {
            Ok(answer) => {
                self.sim.record(SimEvent::UsyncAnswered {
                    session: self.id,
                    jid: jid.to_string(),
                    protocols: answer.protocols,
                    listed: answer.listed,
                    unchanged: answer.unchanged,
                });
                result(id).children([answer.usync]).build()
            }
            Err(Refusal::NotModelled(what)) => self.not_modelled(id, "usync", what),
            Err(Refusal::BadRequest(why)) => {
                log::info!("session {}: usync refused: {why}", self.id);
                iq_error(id, 400, "bad-request")
            }
            Err(Refusal::Internal(why)) => {
                log::warn!("session {}: usync failed: {why}", self.id);
                iq_error(id, 500, "internal-server-error")
            }
        }
    }

    /// The pre-key upload after a login. WhatsApp accepts it and the client
    /// then remembers that the server has its keys; refusing it (as any
    /// unmodelled IQ is) would make the client generate and upload a fresh
    /// batch of 812 keys at every reconnect, which WhatsApp never causes.
    fn answer_pre_key_upload(&mut self, id: &str, iq: &Node) -> Node {
        let Some(upload) = KeyBundle::from_upload(iq) else {
            return iq_error(id, 400, "bad-request");
        };
        let uploaded = upload.pre_key_count();
        let known = self.with_own_device(|s, jid, device| {
            device.key_bundle.absorb(upload);
            device.pre_keys = device.key_bundle.pre_key_count();
            s.push(SimEvent::PreKeysUploaded {
                jid: jid.to_string(),
                count: uploaded,
            });
        });
        match known {
            Some(()) => result(id).build(),
            None => iq_error(id, 401, "not-authorized"),
        }
    }

    fn answer_pre_key_count(&mut self, id: &str) -> Node {
        match self.with_own_device(|_, _, d| d.pre_keys) {
            Some(count) => result(id)
                .children([NodeBuilder::new("count")
                    .attr("value", count.to_string())
                    .build()])
                .build(),
            None => iq_error(id, 401, "not-authorized"),
        }
    }

    /// The bundle the device uploaded; 404 when it never uploaded one,
    /// which is WhatsApp's cue for the client to upload it.
    fn answer_digest(&mut self, id: &str) -> Node {
        match self.with_own_device(|_, _, d| d.key_bundle.clone()) {
            None => iq_error(id, 401, "not-authorized"),
            Some(bundle) if bundle == KeyBundle::default() => iq_error(id, 404, "item-not-found"),
            Some(bundle) => result(id).children([bundle.digest()]).build(),
        }
    }

    fn answer_rotate(&mut self, id: &str, rotate: Option<&Node>) -> Node {
        let rotated =
            rotate.and_then(|rotate| self.with_own_device(|_, _, d| d.key_bundle.rotate(rotate)));
        match rotated {
            Some(true) => result(id).build(),
            Some(false) => iq_error(id, 400, "bad-request"),
            None => iq_error(id, 401, "not-authorized"),
        }
    }

    /// Runs `f` on the logged-in device's record (with the event log);
    /// `None` when the connection is not logged in or the device is gone.
    fn with_own_device<T>(
        &self,
        f: impl FnOnce(&mut Vec<SimEvent>, &Jid, &mut LinkedDevice) -> T,
    ) -> Option<T> {
        let jid = self.jid.as_ref()?;
        self.sim.with_state(|s| {
            let device = s
                .phones
                .get_mut(jid.user.as_str())
                .and_then(|phone| phone.companion_mut(jid.device))?;
            Some(f(&mut s.events, jid, device))
        })
    }

    fn answer_logout(&mut self, id: &str) -> Option<Node> {
        let Some(jid) = self.jid.clone() else {
            return Some(iq_error(id, 401, "not-authorized"));
        };
        let reply = self.sim.read_state(|s| s.faults.logout_reply);
        match reply {
            LogoutReply::Ok => {
                self.sim.with_state(|s| {
                    if let Some(phone) = s.phones.get_mut(jid.user.as_str()) {
                        phone.remove_companion(jid.device);
                    }
                    s.events.push(SimEvent::Unlinked {
                        jid: jid.to_string(),
                        by: "companion",
                    });
                });
                Some(result(id).build())
            }
            LogoutReply::Error | LogoutReply::NoAnswer => {
                self.sim.record(SimEvent::LogoutNotHonoured {
                    jid: jid.to_string(),
                    reply,
                });
                (reply == LogoutReply::Error).then(|| iq_error(id, 500, "internal-server-error"))
            }
            LogoutReply::HonouredLate { ms } => {
                let sim = self.sim.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sim.with_state(|s| {
                        if let Some(phone) = s.phones.get_mut(jid.user.as_str()) {
                            phone.remove_companion(jid.device);
                        }
                        s.events.push(SimEvent::Unlinked {
                            jid: jid.to_string(),
                            by: "companion (late)",
                        });
                    });
                });
                None
            }
        }
    }

    fn answer_link_code(&mut self, id: &str, reg: &Node) -> Node {
        match attr(reg, "stage").as_deref() {
            Some("companion_hello") => self.companion_hello(id, reg),
            Some("companion_finish") => self.companion_finish(id, reg),
            _ => iq_error(id, 400, "bad-request"),
        }
    }

    fn companion_hello(&mut self, id: &str, reg: &Node) -> Node {
        let phone: String = attr(reg, "jid")
            .and_then(|j| j.split('@').next().map(str::to_string))
            .unwrap_or_default();
        let wrapped = child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub");
        let (Some(wrapped), false) = (wrapped, phone.is_empty()) else {
            return iq_error(id, 400, "bad-request");
        };
        if wrapped.len() != 80 {
            return iq_error(id, 400, "bad-request");
        }
        if self
            .sim
            .with_state(|s| s.faults.throttled_code_numbers.contains(&phone))
        {
            return iq_error(id, 429, "rate-overlimit");
        }
        let reference = random_token(16).into_bytes();
        let expires_at = Instant::now() + self.sim.config().pair_code_lifetime;
        let session = self.id;
        let accepted = self.sim.with_state(|s| {
            let Some(SessionEntry {
                role: SessionRole::Registering(r),
                ..
            }) = s.sessions.get_mut(&session)
            else {
                return false;
            };
            r.code = Some(PendingCode {
                phone: phone.clone(),
                reference: reference.clone(),
                wrapped_companion_ephemeral: wrapped,
                expires_at,
                primary: None,
            });
            s.events.push(SimEvent::PairingCodeRequested {
                session,
                phone: phone.clone(),
            });
            true
        });
        if !accepted {
            return iq_error(id, 400, "bad-request");
        }
        // The phone must exist for the user to type the code on it.
        let _ = self.sim.phone(&phone);
        result(id)
            .children([NodeBuilder::new("link_code_companion_reg")
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference)
                    .build()])
                .build()])
            .build()
    }

    /// The phone opens the companion's key bundle. With the right code it
    /// derives the ADV secret and links the device (answering this IQ first,
    /// then sending `pair-success`); with a wrong one the IQ is refused.
    fn companion_finish(&mut self, id: &str, reg: &Node) -> Node {
        let session = self.id;
        let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle");
        let companion_identity: Option<[u8; 32]> =
            child_bytes(reg, "companion_identity_public").and_then(|b| b.try_into().ok());
        let taken = self.sim.with_state(|s| {
            let Some(SessionEntry {
                role: SessionRole::Registering(r),
                commands,
            }) = s.sessions.get_mut(&session)
            else {
                return None;
            };
            let pending = r.code.as_mut()?;
            let waiting = pending.primary.take()?;
            let phone = pending.phone.clone();
            let noise_key = r.noise_key;
            let identity = s.phones.get(&phone)?.identity.clone();
            Some((waiting, phone, noise_key, identity, commands.clone()))
        });
        let Some((waiting, phone, noise_key, identity, commands)) = taken else {
            return iq_error(id, 400, "bad-request");
        };
        let (Some(bundle), Some(companion_identity)) = (bundle, companion_identity) else {
            let _ = waiting.outcome.send(Err(PhoneError::CompanionRejected(
                "bad companion_finish".into(),
            )));
            return iq_error(id, 400, "bad-request");
        };
        match phone_crypto::open_key_bundle(&waiting.hello, &identity, &bundle, &companion_identity)
        {
            Err(e) => {
                let _ = waiting.outcome.send(Err(e));
                iq_error(id, 403, "forbidden")
            }
            Ok(adv_secret) => {
                self.sim.with_state(|s| {
                    if let Some(SessionEntry {
                        role: SessionRole::Registering(r),
                        ..
                    }) = s.sessions.get_mut(&session)
                    {
                        r.linking = true;
                    }
                });
                let phone = self.sim.phone(&phone);
                let ticket = LinkTicket {
                    session,
                    commands,
                    companion_identity,
                    noise_key,
                    adv_secret,
                    with: "code",
                };
                tokio::spawn(async move {
                    let outcome = phone.link(ticket).await;
                    let _ = waiting.outcome.send(outcome);
                });
                result(id).build()
            }
        }
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().to_string())
}

fn child_bytes(node: &Node, tag: &str) -> Option<Vec<u8>> {
    match &node.get_optional_child(tag)?.content {
        Some(NodeContent::Bytes(b)) => Some(b.clone()),
        Some(NodeContent::String(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

fn result(id: &str) -> NodeBuilder {
    NodeBuilder::new("iq")
        .attr("id", id.to_string())
        .attr("type", "result")
        .attr("from", "s.whatsapp.net")
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", id.to_string())
        .attr("type", "error")
        .attr("from", "s.whatsapp.net")
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// A login refusal, boxed: nodes are large and travel in `Err`.
fn failure(reason: &'static str) -> Box<NodeBuilder> {
    Box::new(NodeBuilder::new("failure").attr("reason", reason))
}

/// Every requested collection is reported empty and up to date.
fn answer_app_state_sync(id: &str, sync: Option<&Node>) -> Node {
    let collections: Vec<Node> = sync
        .and_then(Node::children)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.tag == "collection")
        .map(|c| {
            NodeBuilder::new("collection")
                .attr("name", attr(c, "name").unwrap_or_default())
                .attr("version", attr(c, "version").unwrap_or_else(|| "0".into()))
                .build()
        })
        .collect();
    result(id)
        .children([NodeBuilder::new("sync").children(collections).build()])
        .build()
}

fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_header_names_what_it_refuses() {
        assert!(check_connection_header(WA_CONN_HEADER).is_ok());
        let older_dictionary = [b'W', b'A', WA_CONN_HEADER[2], 2];
        let refusal = check_connection_header(older_dictionary).unwrap_err();
        assert!(
            refusal.to_string().contains("dictionary version 2"),
            "{refusal}"
        );
        let other_protocol = [b'W', b'A', 5, WA_CONN_HEADER[3]];
        assert!(check_connection_header(other_protocol).is_err());
        assert!(check_connection_header(*b"GET ").is_err());
    }
}
