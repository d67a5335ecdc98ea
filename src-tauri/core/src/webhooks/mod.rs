//! Per-device webhooks, as go-whatsapp-web-multidevice offers them: a URL,
//! an optional secret that signs every delivery (HMAC-SHA256 in the
//! `X-Hub-Signature-256` header), and the events to send.
//!
//! - [`settings`]: what a device's webhook is, and checking what an admin
//!   asks for;
//! - [`transitions`]: which change of a device is which event (pure);
//! - [`delivery`]: the bounded outbox and the deliveries, with retries.
//!
//! The URL and events live in the app database; the secret lives in the
//! keyring, and leaves it only to sign: it is never shown back in full,
//! written to a file or logged.

pub mod delivery;
pub mod settings;
pub mod transitions;

pub use delivery::{DeliveryPolicy, Outbox};
pub use settings::{SecretChange, Webhook, WebhookChange, WebhookEvent, WebhookTarget};
