//! Every element the end-to-end tests look for in the window, named for what
//! it is. The markup's hooks (`data-testid`, `name` attributes, classes) are
//! written here only: a change of the UI's markup is one edit here.

// The window.

/// The app's name in the header, the first element the UI renders.
pub const APP_TITLE: &str = "header h1";
/// The header bar, with the "Add device" and "REST API…" buttons.
pub const HEADER: &str = "header";
/// A button, searched for inside a scope by its visible label.
pub const BUTTON: &str = "button";
/// The footer naming the data folder.
pub const DATA_FOLDER_FOOTER: &str = ".data-dir";
/// The notifications shown for a while at the edge of the window.
pub const TOASTS: &str = ".toasts";
/// The persistent banner saying the keyring is not available.
pub const KEYRING_BANNER: &str = "[data-testid=keyring-banner]";

// The device list.

/// What the device list shows when there is no device.
pub const EMPTY_LIST: &str = "[data-testid=empty-state]";
/// The heading of the empty device list.
pub const EMPTY_LIST_HEADING: &str = "[data-testid=empty-state] h2";

/// The card of device `id` in the list.
pub fn device_card(id: &str) -> String {
    format!("li[data-device-id='{id}']")
}

/// The state (e.g. "Logged in") on the card of device `id`.
pub fn device_state(id: &str) -> String {
    format!("{} .state", device_card(id))
}

/// Why the device `id` is in its state (e.g. "Removed from the phone"), on
/// its card.
pub fn device_reason(id: &str) -> String {
    format!("{} .reason", device_card(id))
}

// Adding a device.

/// The "Add device" dialog.
pub const ADD_DIALOG: &str = "[data-testid=add-dialog]";
/// The new device's label in the "Add device" dialog.
pub const ADD_DIALOG_LABEL: &str = "[data-testid=add-dialog] input[name=label]";
/// The new device's id in the "Add device" dialog.
pub const ADD_DIALOG_ID: &str = "[data-testid=add-dialog] input[name=id]";

// Linking.

/// The QR code login dialog.
pub const QR_DIALOG: &str = "[data-testid=qr-dialog]";
/// The error the QR code login dialog shows when the login failed.
pub const QR_DIALOG_ERROR: &str = "[data-testid=qr-dialog] [role=alert]";
/// The pairing-code login dialog.
pub const CODE_DIALOG: &str = "[data-testid=code-dialog]";
/// The phone number field of the pairing-code login dialog.
pub const CODE_DIALOG_PHONE: &str = "[data-testid=code-dialog] input[name=phone]";
/// The pairing code (XXXX-XXXX) shown to be typed into the phone.
pub const PAIRING_CODE: &str = "[data-testid=pairing-code]";

// Logging out, history, deleting.

/// The logout confirmation dialog.
pub const LOGOUT_DIALOG: &str = "[data-testid=logout-dialog]";
/// The field of the logout dialog where the device's label is typed to confirm.
pub const LOGOUT_DIALOG_CONFIRMATION: &str = "[data-testid=logout-dialog] input[name=confirm]";
/// The dialog with a device's history.
pub const HISTORY_DIALOG: &str = "[data-testid=detail-dialog]";
/// The rows of the history table.
pub const HISTORY_ROWS: &str = "[data-testid=detail-dialog] tbody";
/// The delete confirmation dialog.
pub const DELETE_DIALOG: &str = "[data-testid=delete-dialog]";

// Pending unlinks.

/// The panel listing links WhatsApp has not yet confirmed removed.
pub const PENDING_UNLINKS_PANEL: &str = "[data-testid=revocations-panel]";

/// The "Try now" button of the pending unlink of `jid`.
pub fn pending_unlink_try_now(jid: &str) -> String {
    format!("{PENDING_UNLINKS_PANEL} tr[data-jid='{jid}'] button")
}

// The REST API setting.

/// The REST API settings dialog.
pub const API_DIALOG: &str = "[data-testid=api-dialog]";
/// The checkbox that turns the REST API on.
pub const API_DIALOG_ENABLED: &str = "[data-testid=api-dialog] input[name=enabled]";
/// The address the REST API listens on.
pub const API_DIALOG_LISTEN: &str = "[data-testid=api-dialog] input[name=listen]";
/// The REST API password.
pub const API_DIALOG_PASSWORD: &str = "[data-testid=api-dialog] input[name=password]";

/// The webhook section of the history dialog, and its fields.
pub const WEBHOOK_SECTION: &str = "[data-testid=webhook-section]";
pub const WEBHOOK_URL: &str = "[data-testid=webhook-section] #webhook-url";
pub const WEBHOOK_SECRET: &str = "[data-testid=webhook-section] #webhook-secret";
