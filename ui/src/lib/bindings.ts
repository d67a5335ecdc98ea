// Generated from the Rust types by `make bindings`; do not edit.
// A test fails when this file and the Rust types disagree.

export type AppInfo = { productName: string, version: string, dataDir: string, 
/**
 * What the start-up found wrong and repaired (a damaged app database,
 * devices restored from their files); shown as a banner.
 */
warnings: Array<string>, };

export type Device = { id: string, label: string, 
/**
 * Digits only; `None` while the device has no credentials.
 */
phone_number: string | null, 
/**
 * The account's push name; `None` while unknown or without credentials.
 */
display_name: string | null, 
/**
 * The companion JID (`PN:D@s.whatsapp.net`); `None` without credentials.
 */
jid: string | null, state: DeviceState, state_reason: StateReason, 
/**
 * Where a login of the device stands, for the login dialogs: always
 * `LoginPhase::of(state, state_reason)` (the transitions set both).
 */
login_phase: LoginPhase | null, 
/**
 * When `connecting` after a failure: the time of the next attempt.
 */
next_retry_at: string | null, 
/**
 * When `offline` because of a temporary ban: when the ban ends.
 */
ban_expires_at: string | null, 
/**
 * Whether long-term credentials exist for this device (keyring entry and
 * session store). `false` exactly in `disconnected` and `pairing`.
 */
has_credentials: boolean, created_at: string, last_connected_at: string | null, 
/**
 * Which save of the device this snapshot is: every save (and every
 * removal) in the data folder takes a higher number than all before
 * it, so of two snapshots of one device the higher revision is the
 * newer. The window keeps the newer of a listed and an announced
 * snapshot by it.
 */
revision: number, };

export type DeviceList = { revision: number, 
/**
 * Ordered by id.
 */
devices: Array<Device>, };

export type DeviceState = "disconnected" | "pairing" | "connecting" | "logged_in" | "offline";

export type StateReason = "created" | "qr_login_requested" | "code_login_requested" | "qr_expired" | "pairing_failed" | "login_cancelled" | "paired" | "connected" | "restoring" | "reconnect_requested" | "ban_ended" | "connection_lost" | "logged_out" | "removed_from_phone" | "account_locked" | "logged_out_by_whatsapp" | "replaced" | "temporarily_banned" | "client_outdated" | "credentials_lost" | "session_damaged";

export type LoginPhase = "waiting" | "linking" | "linked" | "failed" | "cancelled";

export type ServiceError = { code: ErrorCode, message: string, };

export type ErrorCode = "not_found" | "invalid_id" | "invalid_phone" | "invalid_label" | "already_exists" | "busy" | "no_credentials" | "keyring_unavailable" | "whatsapp_error" | "internal" | "invalid_setting" | "login_cancelled" | "session_damaged";

export type QrCode = { device_id: string, svg: string, expires_at: string, };

export type PairingCode = { device_id: string, code: string, expires_at: string, };

export type LogoutOutcome = { 
/**
 * Whether the device had credentials (if not, nothing was changed).
 */
had_credentials: boolean, 
/**
 * Whether WhatsApp confirmed the unlink (`remove-companion-device`).
 */
unlink_confirmed: boolean, 
/**
 * Whether the unlink goes on as a pending revocation (the link's keys
 * kept for it, see [`PendingRevocation`]).
 */
revocation_pending: boolean, 
/**
 * For the admin: what happened, e.g. that the device may remain in the
 * phone's Linked devices list until removed there.
 */
message: string, };

export type HistoryEntry = { at: string, device_id: string, action: HistoryAction, 
/**
 * `desktop`, `api:<user>`, `whatsapp` or `system`.
 */
actor: string, outcome: Outcome, detail: string, };

export type HistoryAction = "create" | "rename" | "login_qr" | "login_code" | "cancel_login" | "paired" | "qr_expired" | "pairing_failed" | "reconnect" | "logout" | "delete" | "removed_from_phone" | "account_locked" | "logged_out_by_whatsapp" | "replaced" | "temporarily_banned" | "client_outdated" | "recovered_wipe" | "session_damaged" | "revocation_pending" | "revocation_attempt" | "revocation_completed" | "revocation_forgotten" | "recovered_device" | "webhook_changed" | "webhook_failed";

export type Outcome = "ok" | "failed" | "cancelled";

export type PendingRevocation = { 
/**
 * The companion JID the link was made as.
 */
jid: string, 
/**
 * The device the link belonged to (it may be linked anew since).
 */
device_id: string, phone_number: string | null, 
/**
 * When the logout that left it pending ran.
 */
since: string, 
/**
 * Tries so far, the logout's own included.
 */
attempts: number, next_attempt_at: string, 
/**
 * What the last try ran into, in words; never a secret.
 */
last_error: string | null, };

export type RevocationTry = { jid: string, 
/**
 * Whether the revocation ended (unlinked, or the link was gone).
 */
completed: boolean, message: string, 
/**
 * The revocation as it is now, when it goes on.
 */
revocation: PendingRevocation | null, };

export type RevocationRemovedEvent = { jid: string, 
/**
 * `true`: WhatsApp confirmed the unlink (or the link was gone);
 * `false`: an admin forgot it without unlinking.
 */
completed: boolean, };

export type DeviceRemovedEvent = { device_id: string, 
/**
 * Above the revision of every snapshot of the removed device: a listed
 * snapshot of it that is older stays out of the window.
 */
revision: number, };

export type NoticeEvent = { device_id: string, reason: StateReason, message: string, };

export type ApiStatus = { enabled: boolean, listen: string, 
/**
 * The user of the password in the keyring, if one is stored.
 */
user: string | null, 
/**
 * Where the API answers now (`http://127.0.0.1:3000`), if it runs.
 */
serving_at: string | null, 
/**
 * Why it does not run although enabled (port taken, keyring locked).
 */
problem: string | null, };

export type ApiSettingsUpdate = { enabled: boolean, listen: string, user: string, password?: string, };

export type Webhook = { device_id: string, 
/**
 * Empty when the device has no webhook.
 */
url: string, 
/**
 * The events sent; empty means every event.
 */
events: Array<WebhookEvent>, 
/**
 * Whether deliveries are signed (the secret is in the keyring).
 */
has_secret: boolean, };

export type WebhookEvent = "device.logged_in" | "device.logged_out" | "device.removed_from_phone" | "device.banned" | "device.replaced" | "device.reconnecting" | "device.revocation_finished";

/** Every command of the shell (`src-tauri/src/command_names.rs`). */
export const COMMANDS = [
  "app_info",
  "list_devices",
  "get_device",
  "create_device",
  "rename_device",
  "login_qr",
  "login_code",
  "cancel_login",
  "reconnect_device",
  "logout_device",
  "delete_device",
  "device_history",
  "export_history_csv",
  "api_status",
  "update_api_settings",
  "list_revocations",
  "retry_revocation",
  "forget_revocation",
  "device_webhook",
  "set_device_webhook",
] as const;

export type Command = (typeof COMMANDS)[number];

/** Every event the shell emits (`src-tauri/src/events.rs`). */
export const EVENTS = {
  DEVICE_CHANGED: "device://changed",
  DEVICE_REMOVED: "device://removed",
  QR_CODE: "device://qr-code",
  PAIRING_CODE: "device://pairing-code",
  NOTICE: "device://notice",
  REVOCATION_CHANGED: "revocation://changed",
  REVOCATION_REMOVED: "revocation://removed",
  RESYNC: "device://resync",
} as const;
