//! Forwards the core's events to the window under namespaced names, and
//! raises a desktop notification for a notice while the window is not
//! focused. The core knows nothing of these names; they exist only here.

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;
use wa_device_core::{DeviceService, ServiceEvent, StateReason};

/// Declares each event name as a constant and lists them all in [`EVENTS`],
/// from which the TypeScript bindings are generated.
macro_rules! event_names {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)+) => {
        $($(#[$doc])* pub const $name: &str = $value;)+

        /// Every event the window receives: the constant's name and the event's.
        pub const EVENTS: &[(&str, &str)] = &[$((stringify!($name), $value)),+];
    };
}

event_names! {
    DEVICE_CHANGED = "device://changed";
    DEVICE_REMOVED = "device://removed";
    QR_CODE = "device://qr-code";
    PAIRING_CODE = "device://pairing-code";
    NOTICE = "device://notice";
    REVOCATION_CHANGED = "revocation://changed";
    REVOCATION_REMOVED = "revocation://removed";
    /// Sent when the forwarder fell behind and missed events: the UI reloads the
    /// device list instead of trusting its copy.
    RESYNC = "device://resync";
}

/// Payload of [`DEVICE_REMOVED`].
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DeviceRemovedEvent {
    pub device_id: String,
    /// Above the revision of every snapshot of the removed device: a listed
    /// snapshot of it that is older stays out of the window.
    pub revision: u64,
}

/// Payload of [`NOTICE`]: something WhatsApp did on its own.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct NoticeEvent {
    pub device_id: String,
    pub reason: StateReason,
    pub message: String,
}

/// Payload of [`REVOCATION_REMOVED`].
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RevocationRemovedEvent {
    pub jid: String,
    /// `true`: WhatsApp confirmed the unlink (or the link was gone);
    /// `false`: an admin forgot it without unlinking.
    pub completed: bool,
}

/// Subscribes before returning, so no event after this call is missed.
pub fn forward(app: AppHandle, service: &DeviceService) {
    let mut events = service.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => emit(&app, event),
                Err(RecvError::Lagged(_)) => {
                    let _ = app.emit(RESYNC, ());
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

fn emit(app: &AppHandle, event: ServiceEvent) {
    // An emit fails only when the window is gone; the next event tries again.
    let _ = match event {
        ServiceEvent::DeviceChanged { device } => app.emit(DEVICE_CHANGED, device),
        ServiceEvent::DeviceRemoved {
            device_id,
            revision,
        } => app.emit(
            DEVICE_REMOVED,
            DeviceRemovedEvent {
                device_id: device_id.to_string(),
                revision,
            },
        ),
        ServiceEvent::QrCode(qr) => app.emit(QR_CODE, qr),
        ServiceEvent::RevocationChanged { revocation } => app.emit(REVOCATION_CHANGED, revocation),
        ServiceEvent::RevocationRemoved { jid, completed } => {
            if completed {
                notify_if_unfocused(
                    app,
                    "Link ended",
                    &format!(
                        "WhatsApp confirmed the unlink of {jid}: it is gone from the phone's Linked devices"
                    ),
                );
            }
            app.emit(
                REVOCATION_REMOVED,
                RevocationRemovedEvent { jid, completed },
            )
        }
        ServiceEvent::PairingCode(code) => app.emit(PAIRING_CODE, code),
        ServiceEvent::Notice {
            device_id,
            reason,
            message,
        } => {
            notify_if_unfocused(app, &format!("Device {device_id}"), &message);
            app.emit(
                NOTICE,
                NoticeEvent {
                    device_id: device_id.to_string(),
                    reason,
                    message,
                },
            )
        }
    };
}

fn notify_if_unfocused(app: &AppHandle, title: &str, message: &str) {
    let focused = app
        .get_webview_window("main")
        .and_then(|window| window.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return;
    }
    // The message names the device and what happened; it never holds a
    // secret. Showing talks to the notification daemon over D-Bus, which may
    // block: not on the task that forwards events.
    let builder = app
        .notification()
        .builder()
        .title(title.to_owned())
        .body(message.to_owned());
    tauri::async_runtime::spawn_blocking(move || {
        let _ = builder.show();
    });
}
