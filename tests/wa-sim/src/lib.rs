//! A simulator of WhatsApp's side of the multi-device protocol (the chat
//! server and the user's primary phone), so that an unmodified
//! `whatsapp-rust` 0.7 client can run every linked-device flow end to end
//! without reaching WhatsApp. See README.md for what it does and does not
//! model.
//!
//! In process: `Simulator::new(SimConfig::default())`, then hand
//! `sim.transport_factory()` to the client. As a process: the `wa-sim`
//! binary serves the same simulator on a loopback WebSocket with an HTTP
//! control API ([`serve`]).

mod cert_chain;
mod control;
mod error;
mod in_process;
pub mod logger;
mod noise;
mod phone_crypto;
mod routine_iqs;
mod serve;
mod session;
mod sim;
mod usync;

pub use control::ControlClient;
pub use error::{PhoneError, SimError, WaitTimeout};
pub use in_process::InProcessTransportFactory;
pub use noise::HandshakeKind;
pub use serve::{Endpoints, ServeError, serve};
pub use sim::{Fault, LinkedDevice, LogoutReply, Phone, SimConfig, SimEvent, Simulator};
pub use wacore_binary::Jid;

/// The QR string of a client's `Event::PairingQrCode`, to hand to
/// [`Phone::scan`]. (`whatsapp_rust::types::events::Event` is this type.)
pub fn pairing_qr(event: &wacore::types::events::Event) -> Option<&str> {
    match event {
        wacore::types::events::Event::PairingQrCode(qr) => Some(qr.code.as_str()),
        _ => None,
    }
}

/// The code of a client's `Event::PairingCode`, to hand to
/// [`Phone::enter_code`].
pub fn pairing_code(event: &wacore::types::events::Event) -> Option<&str> {
    match event {
        wacore::types::events::Event::PairingCode(code) => Some(code.code.as_str()),
        _ => None,
    }
}
