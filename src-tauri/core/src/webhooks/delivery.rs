//! The outbox: device changes become deliveries in a bounded queue that
//! never blocks the service, sent by a few workers with retries and
//! backoff. A delivery that fails every try is written to the device's
//! history (by the report the service installs), as is an event the full
//! queue had to drop.

use super::settings::{WebhookEvent, WebhookTarget, url_origin};
use super::transitions::{Seen, event_for};
use crate::model::{Device, DeviceId, PendingRevocation};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Tries per delivery, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled before each next one.
    pub first_delay: Duration,
    /// Bound on one try, from connecting to the end of the answer.
    pub timeout: Duration,
    /// Deliveries that may wait; beyond it new events are dropped (and
    /// recorded as such).
    pub queue: usize,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryPolicy {
    /// GOWA's: five tries, 1 s, 2 s, 4 s and 8 s apart, 10 s each.
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            queue: 1024,
            concurrency: 4,
        }
    }
}

/// Writes a delivery failure to a device's history.
pub type FailureReport = Arc<dyn Fn(&DeviceId, String) + Send + Sync>;

struct Delivery {
    device_id: DeviceId,
    event: WebhookEvent,
    url: String,
    secret: Option<String>,
    body: Vec<u8>,
}

/// Every device's webhook target, what was last seen of each device, and
/// the queue of deliveries.
pub struct Outbox {
    targets: Mutex<HashMap<DeviceId, WebhookTarget>>,
    seen: Mutex<HashMap<DeviceId, Seen>>,
    queue: mpsc::Sender<Delivery>,
    waiting: Mutex<Option<mpsc::Receiver<Delivery>>>,
    policy: DeliveryPolicy,
    report: OnceLock<FailureReport>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    pub fn new(policy: DeliveryPolicy) -> Arc<Outbox> {
        let (queue, waiting) = mpsc::channel(policy.queue.max(1));
        Arc::new(Outbox {
            targets: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            queue,
            waiting: Mutex::new(Some(waiting)),
            policy,
            report: OnceLock::new(),
            worker: Mutex::new(None),
        })
    }

    /// Starts delivering, reporting failures to `report`. Must run inside a
    /// tokio runtime; a second call does nothing.
    pub fn start(&self, report: FailureReport) {
        let Some(mut waiting) = lock(&self.waiting).take() else {
            return;
        };
        let _ = self.report.set(Arc::clone(&report));
        let policy = self.policy.clone();
        let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
        let worker = tokio::spawn(async move {
            while let Some(delivery) = waiting.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let policy = policy.clone();
                let report = Arc::clone(&report);
                tokio::spawn(async move {
                    if let Err(why) = deliver(&delivery, &policy).await {
                        report(&delivery.device_id, why);
                    }
                    drop(slot);
                });
            }
        });
        *lock(&self.worker) = Some(worker);
    }

    /// Stops taking deliveries off the queue (those in flight finish).
    pub fn stop(&self) {
        if let Some(worker) = lock(&self.worker).take() {
            worker.abort();
        }
    }

    /// Sets (or with `None` removes) where `id`'s deliveries go.
    pub fn set_target(&self, id: &DeviceId, target: Option<WebhookTarget>) {
        let mut targets = lock(&self.targets);
        match target {
            Some(target) => targets.insert(id.clone(), target),
            None => targets.remove(id),
        };
    }

    /// A new snapshot of `device`, in the order of its changes (the service
    /// calls this with the device's lock held): queues the event it is, if
    /// any, for the device's webhook.
    pub fn device_changed(&self, device: &Device) {
        let (event, jid) = {
            let mut seen = lock(&self.seen);
            let before = seen.get(&device.id);
            let event = event_for(before, device);
            let now = Seen::of(device, before);
            let jid = now.jid.clone();
            seen.insert(device.id.clone(), now);
            (event, jid)
        };
        if let Some(event) = event {
            let payload = serde_json::json!({
                "device_id": device.id,
                "label": device.label,
                "state": device.state,
                "state_reason": device.state_reason,
                "phone_number": device.phone_number,
                "display_name": device.display_name,
                "jid": device.jid,
                "linked_as": jid,
                "ban_expires_at": device.ban_expires_at,
                "next_retry_at": device.next_retry_at,
                "revision": device.revision,
            });
            self.enqueue(&device.id, event, jid.as_deref(), payload);
        }
    }

    /// `id` was deleted: nothing more is sent for it.
    pub fn device_removed(&self, id: &DeviceId) {
        lock(&self.seen).remove(id);
        lock(&self.targets).remove(id);
    }

    /// WhatsApp confirmed the unlink of `revocation`.
    pub fn revocation_finished(&self, revocation: &PendingRevocation) {
        let Ok(id) = DeviceId::parse(&revocation.device_id) else {
            return;
        };
        let payload = serde_json::json!({
            "device_id": revocation.device_id,
            "jid": revocation.jid,
            "phone_number": revocation.phone_number,
            "since": revocation.since,
            "attempts": revocation.attempts,
        });
        self.enqueue(
            &id,
            WebhookEvent::RevocationFinished,
            Some(&revocation.jid),
            payload,
        );
    }

    fn enqueue(
        &self,
        id: &DeviceId,
        event: WebhookEvent,
        jid: Option<&str>,
        payload: serde_json::Value,
    ) {
        let Some(target) = lock(&self.targets).get(id).cloned() else {
            return;
        };
        if !target.wants(event) {
            return;
        }
        // GOWA's envelope: `device_id` is the account's JID, `session_id`
        // the id the device was registered under.
        let body = serde_json::json!({
            "event": event.as_str(),
            "device_id": jid.unwrap_or_default(),
            "session_id": id,
            "timestamp": crate::app_db::now(),
            "payload": payload,
        });
        let delivery = Delivery {
            device_id: id.clone(),
            event,
            url: target.url,
            secret: target.secret,
            body: body.to_string().into_bytes(),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(delivery)
            && let Some(report) = self.report.get()
        {
            report(
                id,
                format!(
                    "{} was not sent: {} deliveries were already waiting",
                    event.as_str(),
                    self.policy.queue
                ),
            );
        }
    }
}

/// The `X-Hub-Signature-256` value of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Tries `delivery` up to `policy.attempts` times; the failure, in words,
/// names the event, the URL's origin and the last try's problem.
async fn deliver(delivery: &Delivery, policy: &DeliveryPolicy) -> Result<(), String> {
    let attempts = policy.attempts.max(1);
    let mut delay = policy.first_delay;
    let mut last = String::new();
    for attempt in 1..=attempts {
        let url = delivery.url.clone();
        let body = delivery.body.clone();
        let signed = delivery.secret.as_deref().map(|s| signature(s, &body));
        let timeout = policy.timeout;
        let tried = tokio::task::spawn_blocking(move || post(&url, body, signed, timeout)).await;
        match tried {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => last = why,
            Err(_) => last = "the delivery was interrupted".to_owned(),
        }
        tracing::debug!(
            event = delivery.event.as_str(),
            device_id = %delivery.device_id,
            attempt,
            problem = %last,
            "webhook delivery failed"
        );
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    let failure = format!(
        "{} to {} failed after {attempts} tries: {last}",
        delivery.event.as_str(),
        url_origin(&delivery.url)
    );
    tracing::warn!(device_id = %delivery.device_id, %failure, "webhook delivery gave up");
    Err(failure)
}

/// One try: a POST that counts as delivered on any 2xx answer. Redirects
/// are not followed (a webhook's URL is where its events go).
fn post(
    url: &str,
    body: Vec<u8>,
    signature: Option<String>,
    timeout: Duration,
) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("wa-device-admin/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.post(url).header("Content-Type", "application/json");
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    match request.send(body) {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!(
            "the receiver answered HTTP {}",
            answer.status().as_u16()
        )),
        Err(error) => Err(problem_in_words(&error)),
    }
}

/// A failed try in words: never the URL (it may carry a token).
fn problem_in_words(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(_) => "no answer in time".to_owned(),
        ureq::Error::HostNotFound => "the host name was not found".to_owned(),
        ureq::Error::ConnectionFailed => "the connection was refused or failed".to_owned(),
        ureq::Error::Io(io) => format!("the connection failed ({})", io.kind()),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            "the TLS handshake failed (is the certificate valid for that host?)".to_owned()
        }
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            "the receiver answered with a redirect, which is not followed".to_owned()
        }
        _ => "the request failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_gowas_hmac_sha256_in_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
