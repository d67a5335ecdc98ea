// The only module that talks to the Tauri backend. Components receive a
// `Backend` through context (see `context.ts`), so component tests can hand
// them a fake one instead of patching `invoke`.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { EVENTS, type Command } from "./bindings";
import type {
  ApiSettingsUpdate,
  ApiStatus,
  AppInfo,
  Device,
  DeviceList,
  DeviceRemovedEvent,
  HistoryEntry,
  LogoutOutcome,
  NoticeEvent,
  PairingCode,
  PendingRevocation,
  QrCode,
  RevocationRemovedEvent,
  RevocationTry,
  ServiceError,
  Webhook,
  WebhookEvent,
} from "./bindings";

export type * from "./bindings";

/** The error shape every backend command rejects with (`{code, message}`). */
export type BackendError = ServiceError | { code: "ipc"; message: string };

/** What the shell pushes to the window: one handler per name of `EVENTS`. */
export interface BackendEvents {
  deviceChanged(device: Device): void;
  deviceRemoved(event: DeviceRemovedEvent): void;
  qrCode(qr: QrCode): void;
  pairingCode(code: PairingCode): void;
  notice(notice: NoticeEvent): void;
  /** A pending revocation was added or tried. */
  revocationChanged(revocation: PendingRevocation): void;
  /** A pending revocation ended: unlinked (`completed`) or forgotten. */
  revocationRemoved(event: RevocationRemovedEvent): void;
  /** Events were missed: reload the device list. */
  resync(): void;
}

export interface Backend {
  appInfo(): Promise<AppInfo>;
  /** Every device, with the revision the list is current as of. */
  listDevices(): Promise<DeviceList>;
  getDevice(id: string): Promise<Device>;
  createDevice(id: string | null, label: string): Promise<Device>;
  renameDevice(id: string, label: string): Promise<Device>;
  loginQr(id: string): Promise<QrCode>;
  loginCode(id: string, phoneNumber: string): Promise<PairingCode>;
  cancelLogin(id: string): Promise<Device>;
  reconnect(id: string): Promise<Device>;
  logout(id: string): Promise<LogoutOutcome>;
  deleteDevice(id: string): Promise<LogoutOutcome>;
  history(id: string): Promise<HistoryEntry[]>;
  exportHistoryCsv(id: string): Promise<string>;
  apiStatus(): Promise<ApiStatus>;
  updateApiSettings(update: ApiSettingsUpdate): Promise<ApiStatus>;
  /** Links whose unlink WhatsApp has not confirmed yet, the next due first. */
  listRevocations(): Promise<PendingRevocation[]>;
  /** "Try now": one unlink attempt, its result in words. */
  retryRevocation(jid: string): Promise<RevocationTry>;
  /** "Forget without unlinking": deletes the link's keys, stops retrying. */
  forgetRevocation(jid: string): Promise<null>;
  /** The device's webhook: URL, events, whether it signs (never the secret). */
  deviceWebhook(id: string): Promise<Webhook>;
  /**
   * Sets the device's webhook; an empty `url` removes it. `secret`: `null`
   * keeps the one set, `""` removes it, anything else replaces it.
   */
  setDeviceWebhook(
    id: string,
    url: string,
    events: WebhookEvent[],
    secret: string | null,
  ): Promise<Webhook>;
  /** Starts delivering events; resolves once listening, with the function that stops it. */
  subscribe(handlers: BackendEvents): Promise<() => void>;
}

export function isBackendError(value: unknown): value is BackendError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as BackendError).code === "string" &&
    typeof (value as BackendError).message === "string"
  );
}

/** Turns whatever a command rejected with into a `BackendError`; a plain
 * string comes from Tauri itself (a missing permission, a bad argument). */
export function toBackendError(value: unknown): BackendError {
  if (isBackendError(value)) return value;
  return { code: "ipc", message: String(value) };
}

async function call<T>(command: Command, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw toBackendError(error);
  }
}

async function subscribe(handlers: BackendEvents): Promise<() => void> {
  const unlisten: UnlistenFn[] = await Promise.all([
    listen<Device>(EVENTS.DEVICE_CHANGED, (e) => handlers.deviceChanged(e.payload)),
    listen<DeviceRemovedEvent>(EVENTS.DEVICE_REMOVED, (e) => handlers.deviceRemoved(e.payload)),
    listen<QrCode>(EVENTS.QR_CODE, (e) => handlers.qrCode(e.payload)),
    listen<PairingCode>(EVENTS.PAIRING_CODE, (e) => handlers.pairingCode(e.payload)),
    listen<NoticeEvent>(EVENTS.NOTICE, (e) => handlers.notice(e.payload)),
    listen<PendingRevocation>(EVENTS.REVOCATION_CHANGED, (e) =>
      handlers.revocationChanged(e.payload),
    ),
    listen<RevocationRemovedEvent>(EVENTS.REVOCATION_REMOVED, (e) =>
      handlers.revocationRemoved(e.payload),
    ),
    listen<null>(EVENTS.RESYNC, () => handlers.resync()),
  ]);
  return () => unlisten.forEach((stop) => stop());
}

export const tauriBackend: Backend = {
  appInfo: () => call<AppInfo>("app_info"),
  listDevices: () => call<DeviceList>("list_devices"),
  getDevice: (id) => call<Device>("get_device", { id }),
  createDevice: (id, label) => call<Device>("create_device", { id, label }),
  renameDevice: (id, label) => call<Device>("rename_device", { id, label }),
  loginQr: (id) => call<QrCode>("login_qr", { id }),
  loginCode: (id, phoneNumber) => call<PairingCode>("login_code", { id, phoneNumber }),
  cancelLogin: (id) => call<Device>("cancel_login", { id }),
  reconnect: (id) => call<Device>("reconnect_device", { id }),
  logout: (id) => call<LogoutOutcome>("logout_device", { id }),
  deleteDevice: (id) => call<LogoutOutcome>("delete_device", { id }),
  history: (id) => call<HistoryEntry[]>("device_history", { id }),
  exportHistoryCsv: (id) => call<string>("export_history_csv", { id }),
  apiStatus: () => call<ApiStatus>("api_status"),
  updateApiSettings: (update) => call<ApiStatus>("update_api_settings", { update }),
  listRevocations: () => call<PendingRevocation[]>("list_revocations"),
  retryRevocation: (jid) => call<RevocationTry>("retry_revocation", { jid }),
  forgetRevocation: (jid) => call<null>("forget_revocation", { jid }),
  deviceWebhook: (id) => call<Webhook>("device_webhook", { id }),
  setDeviceWebhook: (id, url, events, secret) =>
    call<Webhook>("set_device_webhook", { id, url, events, secret }),
  subscribe,
};
