//! Reading and setting a device's webhook (see [`crate::webhooks`]), and
//! wiring the outbox to the service: its targets at start-up, its failure
//! reports into the history, its secrets out of the keyring with the device.

use super::{DeviceService, ServiceCore};
use crate::error::{ErrorCode, Result, ServiceError};
use crate::model::{Actor, DeviceId, HistoryAction, Outcome};
use crate::webhooks::settings::url_origin;
use crate::webhooks::{SecretChange, Webhook, WebhookChange, WebhookEvent, WebhookTarget};
use std::sync::{Arc, Weak};

impl DeviceService {
    /// The webhook of device `id`; an empty URL when it has none.
    pub fn webhook(&self, id: &str) -> Result<Webhook> {
        let id = DeviceId::parse(id)?;
        self.inner.device(&id)?;
        Ok(self.inner.db.webhook(&id)?.unwrap_or(Webhook {
            device_id: id,
            url: String::new(),
            events: Vec::new(),
            has_secret: false,
        }))
    }

    /// Sets the webhook of device `id` (an empty URL removes it and its
    /// secret). The secret goes to the keyring first: when the keyring
    /// cannot take it, nothing changes.
    pub async fn set_webhook(
        &self,
        id: &str,
        change: WebhookChange,
        actor: Actor,
    ) -> Result<Webhook> {
        let id = DeviceId::parse(id)?;
        change.check()?;
        let _guard = self.inner.lock(&id).await;
        self.inner.device(&id)?;
        let current = self.inner.db.webhook(&id)?;
        let had_secret = current.as_ref().is_some_and(|w| w.has_secret);
        let name = self.inner.names.webhook(&id);
        let secret = match (&change.secret, change.url.is_empty()) {
            (SecretChange::Set(secret), false) => {
                let (name, bytes) = (name.clone(), secret.as_bytes().to_vec());
                self.inner.keyring(move |s| s.set(&name, &bytes)).await?;
                Some(secret.clone())
            }
            (SecretChange::Keep, false) if had_secret => {
                let name = name.clone();
                let stored = self.inner.keyring(move |s| s.get(&name)).await?;
                let Some(stored) = stored else {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidSetting,
                        "the webhook's secret is missing from the keyring; set it again",
                    ));
                };
                Some(String::from_utf8(stored).map_err(|_| {
                    ServiceError::internal(
                        "the webhook's secret in the keyring is not text; set it again",
                    )
                })?)
            }
            _ => {
                if had_secret {
                    let name = name.clone();
                    self.inner.keyring(move |s| s.delete(&name)).await?;
                }
                None
            }
        };
        let webhook = Webhook {
            device_id: id.clone(),
            url: change.url.clone(),
            events: match (change.url.is_empty(), change.events) {
                (true, _) => Vec::new(),
                (false, Some(events)) => events,
                (false, None) => current.map(|w| w.events).unwrap_or_default(),
            },
            has_secret: secret.is_some(),
        };
        self.inner.db.save_webhook(&webhook)?;
        let target = (!webhook.url.is_empty()).then(|| WebhookTarget {
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            secret,
        });
        self.inner.webhooks.set_target(&id, target);
        let detail = if webhook.url.is_empty() {
            "webhook removed".to_owned()
        } else {
            format!(
                "webhook set to {} for {}, {}",
                url_origin(&webhook.url),
                if webhook.events.is_empty() {
                    "every event".to_owned()
                } else {
                    WebhookEvent::list_text(&webhook.events)
                },
                if webhook.has_secret {
                    "signed"
                } else {
                    "unsigned"
                }
            )
        };
        self.inner.record(
            &id,
            HistoryAction::WebhookChanged,
            &actor,
            Outcome::Ok,
            detail,
        );
        Ok(webhook)
    }
}

impl ServiceCore {
    /// Loads every webhook into the outbox and starts its deliveries. A
    /// secret the keyring cannot give now leaves that webhook off (a
    /// start-up warning says so): deliveries are never sent unsigned in
    /// place of signed.
    pub(super) async fn start_webhooks(self: &Arc<Self>) -> Result<()> {
        for webhook in self.db.webhooks()? {
            let secret = if webhook.has_secret {
                let name = self.names.webhook(&webhook.device_id);
                match self.keyring(move |s| s.get(&name)).await {
                    Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
                    _ => None,
                }
            } else {
                None
            };
            if webhook.has_secret && secret.is_none() {
                self.startup_warnings.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                    "the webhook of device \"{}\" is off: its secret could not be read from the keyring; set it again",
                    webhook.device_id
                ));
                continue;
            }
            self.webhooks.set_target(
                &webhook.device_id,
                Some(WebhookTarget {
                    url: webhook.url,
                    events: webhook.events,
                    secret,
                }),
            );
        }
        let core: Weak<ServiceCore> = Arc::downgrade(self);
        self.webhooks
            .start(Arc::new(move |id: &DeviceId, failure: String| {
                if let Some(core) = core.upgrade() {
                    core.record(
                        id,
                        HistoryAction::WebhookFailed,
                        &Actor::System,
                        Outcome::Failed,
                        failure,
                    );
                }
            }));
        Ok(())
    }

    /// Removes the device's row, with its webhook and the webhook's secret.
    pub(super) async fn remove_device_row(&self, id: &DeviceId) -> Result<()> {
        if self.db.webhook(id)?.is_some_and(|w| w.has_secret) {
            let name = self.names.webhook(id);
            self.keyring(move |s| s.delete(&name)).await?;
        }
        self.db.remove_device(id)?;
        self.webhooks.device_removed(id);
        Ok(())
    }
}
