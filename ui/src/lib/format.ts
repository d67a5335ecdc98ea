// Words for what the backend reports: states, reasons, history actions,
// outcomes, errors, times. Every word table of the UI lives here; each is a
// `Record` over a generated type, so a new backend name without words does
// not type-check.
import type {
  BackendError,
  Device,
  DeviceState,
  HistoryAction,
  Outcome,
  StateReason,
  WebhookEvent,
} from "./backend";

export const STATES: DeviceState[] = [
  "logged_in",
  "connecting",
  "pairing",
  "offline",
  "disconnected",
];

// Words beside every colour: state is never told by colour alone.
export const stateWords: Record<DeviceState, string> = {
  disconnected: "Disconnected",
  pairing: "Pairing",
  connecting: "Connecting",
  logged_in: "Logged in",
  offline: "Offline",
};

/** The state on a device's card: a device never linked is "Not linked yet",
 * not "Disconnected". */
export function deviceStateWords(device: Device): string {
  if (device.state === "disconnected" && device.state_reason === "created") {
    return "Not linked yet";
  }
  return stateWords[device.state];
}

// Built once: a formatter per call costs more than the rest of a card.
const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

export function clockTime(iso: string): string {
  return clockFormat.format(new Date(iso));
}

export function dateTime(iso: string | null): string {
  if (!iso) return "—";
  return dateTimeFormat.format(new Date(iso));
}

/** A time to come: the clock time when it is today, else the date too;
 * "due now" once it has passed. */
export function upcomingTime(iso: string, now: number = Date.now()): string {
  const at = new Date(iso);
  if (at.getTime() <= now) return "due now";
  return at.toDateString() === new Date(now).toDateString() ? clockTime(iso) : dateTime(iso);
}

const reasonText: Record<StateReason, string> = {
  created: "New, not linked yet",
  qr_login_requested: "Waiting for the QR code to be scanned",
  code_login_requested: "Waiting for the pairing code",
  qr_expired: "QR code expired",
  pairing_failed: "Pairing code expired or refused",
  login_cancelled: "Login cancelled",
  paired: "Linked; logging in",
  connected: "Connected",
  restoring: "Reconnecting after start",
  reconnect_requested: "Reconnecting",
  ban_ended: "Reconnecting: the ban ended",
  connection_lost: "Connection lost",
  logged_out: "Logged out",
  removed_from_phone: "Removed from the phone",
  account_locked: "WhatsApp locked the account",
  logged_out_by_whatsapp: "Logged out by WhatsApp",
  replaced: "Replaced by another client",
  temporarily_banned: "Temporarily banned",
  client_outdated: "This app's WhatsApp version is outdated",
  credentials_lost: "Credentials missing or unusable",
  session_damaged: "Session data damaged; keys kept, log out to unlink",
};

/** Why the device is in its state, with the times that matter. */
export function reasonWords(device: Device): string {
  const { state_reason: reason } = device;
  if (reason === "temporarily_banned" && device.ban_expires_at) {
    return `Banned until ${clockTime(device.ban_expires_at)}`;
  }
  if (device.state === "connecting" && device.next_retry_at) {
    return `${reasonText[reason]}; next try at ${clockTime(device.next_retry_at)}`;
  }
  return reasonText[reason];
}

export function noticeTitle(reason: StateReason): string {
  return reasonText[reason];
}

const errorText: Record<BackendError["code"], string> = {
  not_found: "Not found",
  invalid_id: "Invalid device id",
  invalid_phone: "Invalid phone number",
  invalid_label: "Invalid label",
  already_exists: "Already exists",
  busy: "Busy",
  no_credentials: "Not linked",
  keyring_unavailable: "Keyring unavailable",
  whatsapp_error: "WhatsApp error",
  internal: "Internal error",
  invalid_setting: "Invalid setting",
  login_cancelled: "Login cancelled",
  session_damaged: "Session data damaged",
  ipc: "App error",
};

/** What happened, in a device's history. */
export const actionWords: Record<HistoryAction, string> = {
  create: "Created",
  rename: "Renamed",
  login_qr: "QR login",
  login_code: "Code login",
  cancel_login: "Login cancelled",
  paired: "Paired",
  qr_expired: "QR expired",
  pairing_failed: "Pairing failed",
  reconnect: "Reconnect",
  logout: "Logout",
  delete: "Delete",
  removed_from_phone: "Removed from phone",
  account_locked: "Account locked",
  logged_out_by_whatsapp: "Logged out by WhatsApp",
  replaced: "Replaced",
  temporarily_banned: "Banned",
  client_outdated: "Client outdated",
  recovered_wipe: "Wipe finished",
  session_damaged: "Session data damaged",
  revocation_pending: "Unlink pending",
  revocation_attempt: "Unlink retried",
  revocation_completed: "Unlink confirmed",
  revocation_forgotten: "Pending unlink forgotten",
  recovered_device: "Restored from its files",
  webhook_changed: "Webhook changed",
  webhook_failed: "Webhook delivery failed",
};

/** A webhook's events, as the window names them. */
export const webhookEventWords: Record<WebhookEvent, string> = {
  "device.logged_in": "Logged in",
  "device.logged_out": "Logged out",
  "device.removed_from_phone": "Removed from the phone",
  "device.banned": "Banned",
  "device.replaced": "Replaced",
  "device.reconnecting": "Reconnecting",
  "device.revocation_finished": "Unlink confirmed",
};

export const outcomeWords: Record<Outcome, string> = {
  ok: "OK",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** The error in words, its message, and its stable code. */
export function errorWords(error: BackendError): string {
  return `${errorText[error.code] ?? "Error"}: ${error.message} (code ${error.code})`;
}

export function deviceName(device: Device): string {
  return device.label || device.id;
}

/** A phone number as digits with a leading "+" (the backend stores digits only). */
export function phoneWords(phone: string | null): string {
  return phone ? `+${phone}` : "no phone number yet";
}

/** Whole seconds left until `iso`, never negative. */
export function secondsLeft(iso: string, now: number): number {
  return Math.max(0, Math.ceil((Date.parse(iso) - now) / 1000));
}

export function countdown(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${s.toString().padStart(2, "0")}`;
}
