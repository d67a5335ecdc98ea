//! How the service is set up, and the retry policy.

use super::{LoginStepObserver, WipeStepObserver};
use crate::secrets::SecretStore;
use crate::session::ServerEndpoint;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// When the service tries again to connect a device with credentials whose
/// connection failed or dropped. The delay before attempt `n` (0-based) is
/// `min(base * 2^n, max)`, spread by a random factor in `1 ± jitter` so that
/// many devices that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// Between 0 and 1.
    pub jitter: f64,
    /// A connection that lasted this long before it dropped counts as
    /// healthy: the next delay starts again from `base`.
    pub stable_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let nominal = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        nominal.mul_f64(factor)
    }
}

/// How the service is set up.
#[derive(Clone)]
pub struct ServiceConfig {
    /// The app-data folder; created private (0700) if missing.
    pub data_dir: PathBuf,
    /// Where long-term secrets go: the OS keyring in the product.
    pub secret_store: Arc<dyn SecretStore>,
    /// Where sessions connect. Only WhatsApp itself outside the `simulator`
    /// feature.
    pub server: ServerEndpoint,
    /// How many devices connect at once during the start-up restore and
    /// the retries the service schedules (an admin's reconnect is not
    /// counted).
    pub restore_concurrency: usize,
    /// Backoff and jitter of the retries after a failed or dropped
    /// connection.
    pub retry: RetryPolicy,
    /// Upper bound of logout step 1 (connecting if needed, then the unlink).
    pub unlink_timeout: Duration,
    /// How long a login waits for the first QR code or the pairing code.
    pub login_timeout: Duration,
    /// Backoff and jitter of the retries of pending revocations.
    pub revocation_retry: RetryPolicy,
    /// At start-up, reconnect devices with credentials, and from then on
    /// retry pending revocations in the background.
    pub restore_on_open: bool,
    /// See [`WipeStepObserver`].
    pub wipe_step_observer: Option<WipeStepObserver>,
    /// See [`LoginStepObserver`].
    pub login_step_observer: Option<LoginStepObserver>,
    /// Simulator builds: divides the client's sleeps and timeouts (see
    /// [`crate::session::SessionSettings`]). 1 = real time.
    /// How webhook deliveries are tried (see [`crate::webhooks`]).
    pub webhook_delivery: crate::webhooks::DeliveryPolicy,
    #[cfg(feature = "simulator")]
    pub client_time_factor: u32,
}

impl ServiceConfig {
    pub fn new(data_dir: impl Into<PathBuf>, secret_store: Arc<dyn SecretStore>) -> ServiceConfig {
        ServiceConfig {
            data_dir: data_dir.into(),
            secret_store,
            server: ServerEndpoint::default(),
            restore_concurrency: 64,
            retry: RetryPolicy::default(),
            unlink_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            revocation_retry: RetryPolicy {
                base: Duration::from_secs(10),
                max: Duration::from_secs(3600),
                jitter: 0.2,
                stable_after: Duration::ZERO,
            },
            restore_on_open: true,
            wipe_step_observer: None,
            login_step_observer: None,
            webhook_delivery: crate::webhooks::DeliveryPolicy::default(),
            #[cfg(feature = "simulator")]
            client_time_factor: 1,
        }
    }
}
