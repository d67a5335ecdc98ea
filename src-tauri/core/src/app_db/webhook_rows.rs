//! The `webhooks` table: each device's webhook URL and events (its secret
//! is in the keyring; `has_secret` says whether there is one).

use super::{AppDatabase, now, to_millis};
use crate::error::Result;
use crate::model::DeviceId;
use crate::webhooks::{Webhook, WebhookEvent};
use rusqlite::OptionalExtension;

impl AppDatabase {
    /// The webhook of `id`, if it has one.
    pub fn webhook(&self, id: &DeviceId) -> Result<Option<Webhook>> {
        let conn = self.lock();
        let row = conn
            .prepare_cached("SELECT url, events, has_secret FROM webhooks WHERE device_id = ?1")?
            .query_row([id.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, bool>(2)?,
                ))
            })
            .optional()?;
        row.map(|(url, events, has_secret)| {
            Ok(Webhook {
                device_id: id.clone(),
                url,
                events: WebhookEvent::parse_list(&events)?,
                has_secret,
            })
        })
        .transpose()
    }

    /// Every webhook, by device id.
    pub fn webhooks(&self) -> Result<Vec<Webhook>> {
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut stmt =
                conn.prepare_cached("SELECT device_id FROM webhooks ORDER BY device_id")?;
            stmt.query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut all = Vec::new();
        for id in ids.iter().filter_map(|id| DeviceId::parse(id).ok()) {
            all.extend(self.webhook(&id)?);
        }
        Ok(all)
    }

    /// Creates or replaces the webhook of `webhook.device_id`; an empty URL
    /// removes it.
    pub fn save_webhook(&self, webhook: &Webhook) -> Result<()> {
        let conn = self.lock();
        if webhook.url.is_empty() {
            conn.execute(
                "DELETE FROM webhooks WHERE device_id = ?1",
                [webhook.device_id.as_str()],
            )?;
            return Ok(());
        }
        conn.prepare_cached(
            "INSERT INTO webhooks (device_id, url, events, has_secret, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id) DO UPDATE SET
                url = excluded.url, events = excluded.events,
                has_secret = excluded.has_secret, updated_at = excluded.updated_at",
        )?
        .execute(rusqlite::params![
            webhook.device_id.as_str(),
            webhook.url,
            WebhookEvent::list_text(&webhook.events),
            webhook.has_secret,
            to_millis(now()),
        ])?;
        Ok(())
    }
}
