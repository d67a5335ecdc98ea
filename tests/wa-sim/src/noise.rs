//! Responder side of WhatsApp's Noise handshakes (XX, IK, XX-fallback) and
//! the transport cipher that follows them.
//!
//! `NoiseHandshake::finish()` names its keys from the initiator's point of
//! view (`(write, read)` of the client), so the responder reads with the
//! first key and writes with the second.

use wacore::libsignal::protocol::{KeyPair, PublicKey};
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK};
use wacore_noise::NoiseCipher;
use wacore_noise::NoiseHandshake;
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp::{self as wa, HandshakeMessage};

use crate::cert_chain::CertRoot;
use crate::error::SimError;

/// The simulator's Noise identity: a static key pair and the certificate
/// chain that names it, signed from the simulator's own root (see
/// `cert_chain`).
#[derive(Clone)]
pub(crate) struct ServerIdentity {
    pub(crate) key: KeyPair,
    pub(crate) cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub(crate) fn generate(root: &CertRoot) -> Self {
        let key = wacore::crypto::generate_curve_key_pair();
        let public: [u8; 32] = key
            .public_key
            .public_key_bytes()
            .try_into()
            .expect("a Curve25519 public key is 32 bytes");
        let cert_chain = root.chain_for(&public);
        Self { key, cert_chain }
    }

    fn public_bytes(&self) -> &[u8] {
        self.key.public_key.public_key_bytes()
    }

    fn private_bytes(&self) -> &[u8] {
        self.key.private_key.serialize()
    }
}

/// Which handshake a connection completed; tests assert on it to tell a
/// resumed session (IK) from a fresh one or a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeKind {
    Xx,
    Ik,
    XxFallback,
}

/// What the responder knows once the handshake is complete.
pub(crate) struct Established {
    pub(crate) cipher: TransportCipher,
    pub(crate) client_static: [u8; 32],
    pub(crate) payload: wa::ClientPayload,
    pub(crate) kind: HandshakeKind,
}

/// State between our ServerHello and the client's ClientFinish (XX and
/// XX-fallback share it).
pub(crate) struct AwaitingClientFinish {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
    kind: HandshakeKind,
}

/// Result of reading a ClientHello.
pub(crate) enum HelloReply {
    /// IK accepted: the session is established once `server_hello` is sent.
    Done {
        server_hello: Vec<u8>,
        established: Box<Established>,
    },
    /// XX or XX-fallback: send `server_hello`, then wait for ClientFinish.
    AwaitFinish {
        server_hello: Vec<u8>,
        state: Box<AwaitingClientFinish>,
    },
}

fn crypto(context: &'static str) -> impl FnOnce(wacore_noise::HandshakeError) -> SimError {
    move |e| SimError::Handshake(format!("{context}: {e}"))
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], SimError> {
    bytes
        .try_into()
        .map_err(|_| SimError::Handshake(format!("{what} is not 32 bytes")))
}

/// Reads the client's first handshake message and answers it.
///
/// An IK hello encrypted to a key we no longer hold (or never held) is
/// answered with an XX-shaped hello, which makes the client fall back.
/// `prologue` is the connection header the client sent, which both sides
/// hash first.
pub(crate) fn answer_client_hello(
    identity: &ServerIdentity,
    prologue: [u8; 4],
    hello_bytes: &[u8],
) -> Result<HelloReply, SimError> {
    let message = HandshakeMessage::decode_from_slice(hello_bytes)
        .map_err(|e| SimError::Handshake(format!("client hello: {e}")))?;
    let hello = message
        .client_hello
        .into_option()
        .ok_or_else(|| SimError::Handshake("no client hello".into()))?;
    let client_ephemeral = key32(
        hello.ephemeral.as_deref().unwrap_or_default(),
        "client ephemeral",
    )?;
    match (hello.r#static.as_deref(), hello.payload.as_deref()) {
        (Some(encrypted_static), Some(encrypted_payload)) => {
            match try_ik(
                identity,
                prologue,
                client_ephemeral,
                encrypted_static,
                encrypted_payload,
            ) {
                Ok(reply) => Ok(reply),
                Err(_) => answer_xx(
                    identity,
                    prologue,
                    client_ephemeral,
                    HandshakeKind::XxFallback,
                ),
            }
        }
        _ => answer_xx(identity, prologue, client_ephemeral, HandshakeKind::Xx),
    }
}

fn answer_xx(
    identity: &ServerIdentity,
    prologue: [u8; 4],
    client_ephemeral: [u8; 32],
    kind: HandshakeKind,
) -> Result<HelloReply, SimError> {
    let pattern = match kind {
        HandshakeKind::XxFallback => NOISE_PATTERN_XXFALLBACK,
        HandshakeKind::Xx | HandshakeKind::Ik => NOISE_PATTERN_XX,
    };
    let mut noise = NoiseHandshake::new(pattern, &prologue).map_err(crypto("init"))?;
    noise.authenticate(&client_ephemeral);
    let ephemeral = wacore::crypto::generate_curve_key_pair();
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)
        .map_err(crypto("ee"))?;
    let encrypted_static = noise
        .encrypt(identity.public_bytes())
        .map_err(crypto("static"))?;
    noise
        .mix_shared_secret(identity.private_bytes(), &client_ephemeral)
        .map_err(crypto("es"))?;
    let encrypted_cert = noise
        .encrypt(&identity.cert_chain)
        .map_err(crypto("cert"))?;
    let server_hello = server_hello_bytes(
        ephemeral.public_key.public_key_bytes(),
        Some(encrypted_static),
        encrypted_cert,
    );
    Ok(HelloReply::AwaitFinish {
        server_hello,
        state: Box::new(AwaitingClientFinish {
            noise,
            ephemeral,
            kind,
        }),
    })
}

impl AwaitingClientFinish {
    pub(crate) fn read_client_finish(mut self, bytes: &[u8]) -> Result<Established, SimError> {
        let message = HandshakeMessage::decode_from_slice(bytes)
            .map_err(|e| SimError::Handshake(format!("client finish: {e}")))?;
        let finish = message
            .client_finish
            .into_option()
            .ok_or_else(|| SimError::Handshake("no client finish".into()))?;
        let client_static = self
            .noise
            .decrypt(finish.r#static.as_deref().unwrap_or_default())
            .map_err(crypto("client static"))?;
        let client_static = key32(&client_static, "client static")?;
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)
            .map_err(crypto("se"))?;
        let payload = self
            .noise
            .decrypt(finish.payload.as_deref().unwrap_or_default())
            .map_err(crypto("client payload"))?;
        let payload = decode_payload(&payload)?;
        let (client_write, client_read) = self.noise.finish().map_err(crypto("split"))?;
        Ok(Established {
            cipher: TransportCipher::new(client_write, client_read),
            client_static,
            payload,
            kind: self.kind,
        })
    }
}

fn try_ik(
    identity: &ServerIdentity,
    prologue: [u8; 4],
    client_ephemeral: [u8; 32],
    encrypted_static: &[u8],
    encrypted_payload: &[u8],
) -> Result<HelloReply, SimError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &prologue).map_err(crypto("init"))?;
    noise.authenticate(identity.public_bytes());
    noise.authenticate(&client_ephemeral);
    noise
        .mix_shared_secret(identity.private_bytes(), &client_ephemeral)
        .map_err(crypto("es"))?;
    // Fails when the client encrypted to another server key: the caller
    // then answers with XX-fallback.
    let client_static = noise
        .decrypt(encrypted_static)
        .map_err(crypto("client static"))?;
    let client_static = key32(&client_static, "client static")?;
    noise
        .mix_shared_secret(identity.private_bytes(), &client_static)
        .map_err(crypto("ss"))?;
    let payload = noise
        .decrypt(encrypted_payload)
        .map_err(crypto("client payload"))?;
    let payload = decode_payload(&payload)?;

    let ephemeral = wacore::crypto::generate_curve_key_pair();
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)
        .map_err(crypto("ee"))?;
    noise
        .mix_shared_secret(ephemeral.private_key.serialize(), &client_static)
        .map_err(crypto("se"))?;
    let encrypted_cert = noise
        .encrypt(&identity.cert_chain)
        .map_err(crypto("cert"))?;
    let server_hello = server_hello_bytes(
        ephemeral.public_key.public_key_bytes(),
        None,
        encrypted_cert,
    );
    let (client_write, client_read) = noise.finish().map_err(crypto("split"))?;
    Ok(HelloReply::Done {
        server_hello,
        established: Box::new(Established {
            cipher: TransportCipher::new(client_write, client_read),
            client_static,
            payload,
            kind: HandshakeKind::Ik,
        }),
    })
}

fn decode_payload(bytes: &[u8]) -> Result<wa::ClientPayload, SimError> {
    wa::ClientPayload::decode_from_slice(bytes)
        .map_err(|e| SimError::Handshake(format!("client payload: {e}")))
}

fn server_hello_bytes(
    ephemeral: &[u8],
    encrypted_static: Option<Vec<u8>>,
    encrypted_cert: Vec<u8>,
) -> Vec<u8> {
    HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static: encrypted_static,
            payload: Some(encrypted_cert),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Post-handshake AES-GCM with one counter per direction, starting at 0.
pub(crate) struct TransportCipher {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl TransportCipher {
    fn new(client_write: NoiseCipher, client_read: NoiseCipher) -> Self {
        Self {
            read: client_write,
            write: client_read,
            read_counter: 0,
            write_counter: 0,
        }
    }

    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SimError> {
        let out = self
            .write
            .encrypt_with_counter(self.write_counter, plaintext)
            .map_err(|e| SimError::Handshake(format!("encrypt: {e}")))?;
        self.write_counter = self.write_counter.wrapping_add(1);
        Ok(out)
    }

    pub(crate) fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, SimError> {
        let mut buffer = ciphertext.to_vec();
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut buffer)
            .map_err(|e| SimError::Handshake(format!("decrypt: {e}")))?;
        self.read_counter = self.read_counter.wrapping_add(1);
        Ok(buffer)
    }
}

/// Checks that `key` parses as a Curve25519 public key.
pub(crate) fn parse_public(key: &[u8]) -> Result<PublicKey, SimError> {
    PublicKey::from_djb_public_key_bytes(key)
        .map_err(|e| SimError::Protocol(format!("bad public key: {e}")))
}
