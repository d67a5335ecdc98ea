//! A device's webhook and the checks on what an admin sets.

use crate::error::{ErrorCode, Result, ServiceError};
use crate::model::DeviceId;
use serde::{Deserialize, Serialize};

/// What stands for a set secret wherever a webhook is shown; sent back
/// unchanged, it keeps the secret (so a read-modify-write keeps it).
pub const SECRET_MASK: &str = "********";

/// Longest URL accepted, in bytes.
const MAX_URL: usize = 2048;
/// Longest secret accepted, in bytes.
const MAX_SECRET: usize = 256;

/// An event a webhook can be sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS,
)]
pub enum WebhookEvent {
    /// The device logged in (after a link, a reconnect or a restart).
    #[serde(rename = "device.logged_in")]
    LoggedIn,
    /// The device was logged out, by an admin or by WhatsApp.
    #[serde(rename = "device.logged_out")]
    LoggedOut,
    /// The device was removed in the phone's Linked devices.
    #[serde(rename = "device.removed_from_phone")]
    RemovedFromPhone,
    /// WhatsApp banned the account for a while.
    #[serde(rename = "device.banned")]
    Banned,
    /// Another client took the session over.
    #[serde(rename = "device.replaced")]
    Replaced,
    /// A logged-in device lost its connection and tries again.
    #[serde(rename = "device.reconnecting")]
    Reconnecting,
    /// WhatsApp confirmed the unlink of a link a logout left pending.
    #[serde(rename = "device.revocation_finished")]
    RevocationFinished,
}

named_variants!(WebhookEvent {
    LoggedIn => "device.logged_in",
    LoggedOut => "device.logged_out",
    RemovedFromPhone => "device.removed_from_phone",
    Banned => "device.banned",
    Replaced => "device.replaced",
    Reconnecting => "device.reconnecting",
    RevocationFinished => "device.revocation_finished",
});

impl WebhookEvent {
    /// A comma-separated list, GOWA's form (`device.logged_in,device.banned`;
    /// spaces and case ignored, empty for every event) as a sorted set.
    pub fn parse_list(text: &str) -> Result<Vec<WebhookEvent>> {
        let mut events = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let event = WebhookEvent::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::InvalidSetting,
                    format!(
                        "\"{}\" is not an event this app sends; it sends {}",
                        name.chars().take(64).collect::<String>(),
                        WebhookEvent::ALL
                            .iter()
                            .map(|e| e.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            events.push(event);
        }
        events.sort();
        events.dedup();
        Ok(events)
    }

    /// `events` in GOWA's comma-separated form.
    pub fn list_text(events: &[WebhookEvent]) -> String {
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A device's webhook as it is shown: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Webhook {
    #[ts(type = "string")]
    pub device_id: DeviceId,
    /// Empty when the device has no webhook.
    pub url: String,
    /// The events sent; empty means every event.
    pub events: Vec<WebhookEvent>,
    /// Whether deliveries are signed (the secret is in the keyring).
    pub has_secret: bool,
}

/// What happens to the secret when a webhook is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Keep,
    Remove,
    Set(String),
}

impl SecretChange {
    /// GOWA's field: absent or [`SECRET_MASK`] keeps the secret, empty
    /// removes it, anything else replaces it.
    pub fn from_field(field: Option<&str>) -> SecretChange {
        match field {
            None | Some(SECRET_MASK) => SecretChange::Keep,
            Some("") => SecretChange::Remove,
            Some(secret) => SecretChange::Set(secret.to_owned()),
        }
    }
}

/// A webhook as an admin sets it. An empty `url` removes the webhook (and
/// its secret).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookChange {
    pub url: String,
    /// `None` keeps the events set now.
    pub events: Option<Vec<WebhookEvent>>,
    pub secret: SecretChange,
}

impl std::fmt::Debug for WebhookChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = match &self.secret {
            SecretChange::Keep => "keep",
            SecretChange::Remove => "remove",
            SecretChange::Set(_) => "set(..)",
        };
        f.debug_struct("WebhookChange")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &secret)
            .finish()
    }
}

impl WebhookChange {
    /// Checks the change: an `http` or `https` URL with a host and no
    /// credentials in it (they would be shown wherever the webhook is), and
    /// a secret of at most 256 bytes without control characters.
    pub fn check(&self) -> Result<()> {
        let invalid = |message: String| Err(ServiceError::new(ErrorCode::InvalidSetting, message));
        if !self.url.is_empty() {
            if self.url.len() > MAX_URL {
                return invalid(format!("the webhook URL is longer than {MAX_URL} bytes"));
            }
            let Ok(url) = url::Url::parse(&self.url) else {
                return invalid(
                    "the webhook URL is not a URL (for example https://example.com/hook)"
                        .to_owned(),
                );
            };
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return invalid(
                    "the webhook URL must start with http:// or https:// and name a host"
                        .to_owned(),
                );
            }
            if !url.username().is_empty() || url.password().is_some() {
                return invalid("the webhook URL must not hold a user name or password; use the webhook secret to authenticate deliveries".to_owned());
            }
        }
        if let SecretChange::Set(secret) = &self.secret {
            if secret.len() > MAX_SECRET {
                return invalid(format!(
                    "the webhook secret is longer than {MAX_SECRET} bytes"
                ));
            }
            if secret.chars().any(char::is_control) {
                return invalid(
                    "the webhook secret must not contain control characters".to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// Where and how a device's deliveries go: what the outbox holds in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub secret: Option<String>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookTarget {
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// The URL as history and logs name it: scheme, host and port only (a
/// path or query may carry a token).
pub fn url_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "(an unreadable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(url: &str, secret: SecretChange) -> WebhookChange {
        WebhookChange {
            url: url.to_owned(),
            events: None,
            secret,
        }
    }

    #[test]
    fn event_lists_read_gowas_form() {
        assert_eq!(WebhookEvent::parse_list("").expect("test value"), vec![]);
        assert_eq!(
            WebhookEvent::parse_list(" Device.Banned ,device.logged_in,device.banned")
                .expect("test value"),
            vec![WebhookEvent::LoggedIn, WebhookEvent::Banned]
        );
        let error = WebhookEvent::parse_list("message,device.banned").expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidSetting);
        assert!(
            error.message.starts_with("\"message\" is not an event"),
            "{error}"
        );
        assert_eq!(
            WebhookEvent::list_text(&[WebhookEvent::LoggedIn, WebhookEvent::Banned]),
            "device.logged_in,device.banned"
        );
    }

    #[test]
    fn every_event_round_trips_through_its_name() {
        for &event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
            assert_eq!(
                serde_json::to_value(event).expect("test value"),
                serde_json::json!(event.as_str())
            );
        }
    }

    #[test]
    fn the_secret_field_keeps_removes_or_sets() {
        assert_eq!(SecretChange::from_field(None), SecretChange::Keep);
        assert_eq!(
            SecretChange::from_field(Some(SECRET_MASK)),
            SecretChange::Keep
        );
        assert_eq!(SecretChange::from_field(Some("")), SecretChange::Remove);
        assert_eq!(
            SecretChange::from_field(Some("s3cret")),
            SecretChange::Set("s3cret".into())
        );
    }

    #[test]
    fn urls_and_secrets_are_checked_without_echoing_secrets() {
        assert!(
            change("https://hooks.example.com/a?b=c", SecretChange::Keep)
                .check()
                .is_ok()
        );
        assert!(
            change("http://127.0.0.1:9/x", SecretChange::Keep)
                .check()
                .is_ok()
        );
        assert!(change("", SecretChange::Remove).check().is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "https://user:pw@example.com/",
        ] {
            let error = change(bad, SecretChange::Keep)
                .check()
                .expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidSetting, "{bad}");
            assert!(!error.message.contains("pw@"), "{error}");
        }
        let long = "x".repeat(MAX_SECRET + 1);
        let error = change("https://e.com/", SecretChange::Set(long.clone()))
            .check()
            .expect_err("refused");
        assert!(!error.message.contains(&long));
        let error = change("https://e.com/", SecretChange::Set("a\nb".into()))
            .check()
            .expect_err("refused");
        assert!(!error.message.contains("a\nb"));
        let debug = format!(
            "{:?}",
            change("https://e.com/", SecretChange::Set("topsecret".into()))
        );
        assert!(!debug.contains("topsecret"), "{debug}");
    }

    #[test]
    fn only_the_origin_of_a_url_is_named() {
        assert_eq!(
            url_origin("https://e.com:8443/p/t0ken?k=v"),
            "https://e.com:8443"
        );
        assert_eq!(url_origin("nonsense"), "(an unreadable URL)");
    }
}
