// A backend for component tests: every command is a `vi.fn` with a sensible
// default, and `emit` plays the shell's events.
import { vi } from "vitest";
import type { Backend, BackendEvents, Device, PendingRevocation } from "../lib/backend";

// Like the backend's: every snapshot made later is newer.
let lastRevision = 0;

/** A revision above every one given out so far. */
export function nextRevision(): number {
  return ++lastRevision;
}

export function device(overrides: Partial<Device> = {}): Device {
  return {
    id: "support-1",
    label: "Support desk",
    phone_number: "4915112345678",
    display_name: "Support",
    jid: "4915112345678:3@s.whatsapp.net",
    state: "logged_in",
    state_reason: "connected",
    login_phase: "linked",
    next_retry_at: null,
    ban_expires_at: null,
    has_credentials: true,
    created_at: "2026-11-01T10:00:00Z",
    last_connected_at: "2026-11-24T09:00:00Z",
    revision: nextRevision(),
    ...overrides,
  };
}

export function unlinked(overrides: Partial<Device> = {}): Device {
  return device({
    id: "front-2",
    label: "Front office",
    phone_number: null,
    display_name: null,
    jid: null,
    state: "disconnected",
    state_reason: "created",
    login_phase: null,
    has_credentials: false,
    last_connected_at: null,
    ...overrides,
  });
}

/** A link whose unlink WhatsApp has not confirmed yet. */
export function revocation(overrides: Partial<PendingRevocation> = {}): PendingRevocation {
  return {
    jid: "4915112345678:3@s.whatsapp.net",
    device_id: "support-1",
    phone_number: "4915112345678",
    since: "2026-11-24T09:30:00Z",
    attempts: 1,
    next_attempt_at: "2026-11-24T09:31:00Z",
    last_error: "WhatsApp did not confirm the logout's unlink",
    ...overrides,
  };
}

export type FakeBackend = { [K in keyof Backend]: ReturnType<typeof vi.fn> & Backend[K] } & {
  emit: BackendEvents;
};

export function fakeBackend(
  devices: Device[] = [],
  overrides: Partial<Backend> = {},
  revocations: PendingRevocation[] = [],
): FakeBackend {
  let handlers: BackendEvents | null = null;
  const never = () => new Promise<never>(() => {});
  const base: Backend = {
    appInfo: () =>
      Promise.resolve({
        productName: "WA Device Admin",
        version: "9.9.9",
        dataDir: "/tmp/data",
        warnings: [],
      }),
    listDevices: () => Promise.resolve({ revision: nextRevision(), devices }),
    getDevice: (id) => Promise.resolve(devices.find((d) => d.id === id) as Device),
    createDevice: (id, label) =>
      Promise.resolve(unlinked({ id: id ?? "device-000000000001", label })),
    renameDevice: never,
    loginQr: never,
    loginCode: never,
    cancelLogin: (id) => Promise.resolve(devices.find((d) => d.id === id) as Device),
    reconnect: (id) => Promise.resolve(devices.find((d) => d.id === id) as Device),
    logout: () =>
      Promise.resolve({
        had_credentials: true,
        unlink_confirmed: true,
        revocation_pending: false,
        message: "logged out",
      }),
    deleteDevice: () =>
      Promise.resolve({
        had_credentials: false,
        unlink_confirmed: false,
        revocation_pending: false,
        message: "deleted",
      }),
    history: () => Promise.resolve([]),
    exportHistoryCsv: () => Promise.resolve("at,device_id\n"),
    deviceWebhook: (id) =>
      Promise.resolve({ device_id: id, url: "", events: [], has_secret: false }),
    setDeviceWebhook: (id, url, events, secret) =>
      Promise.resolve({
        device_id: id,
        url,
        events: url ? events : [],
        has_secret: url !== "" && secret !== null && secret !== "",
      }),
    apiStatus: () =>
      Promise.resolve({
        enabled: false,
        listen: "127.0.0.1:3000",
        user: null,
        serving_at: null,
        problem: null,
      }),
    updateApiSettings: (update) =>
      Promise.resolve({
        enabled: update.enabled,
        listen: update.listen,
        user: update.user,
        serving_at: update.enabled ? `http://${update.listen}` : null,
        problem: null,
      }),
    listRevocations: () => Promise.resolve(revocations),
    retryRevocation: never,
    forgetRevocation: () => Promise.resolve(null),
    subscribe: (h) => {
      handlers = h;
      return Promise.resolve(() => (handlers = null));
    },
    ...overrides,
  };
  const fake = Object.fromEntries(
    Object.entries(base).map(([name, fn]) => [name, vi.fn(fn as (...a: unknown[]) => unknown)]),
  ) as unknown as FakeBackend;
  const forward =
    <K extends keyof BackendEvents>(name: K) =>
    (...args: Parameters<BackendEvents[K]>) => {
      if (!handlers) throw new Error("the app has not subscribed to events");
      (handlers[name] as (...a: Parameters<BackendEvents[K]>) => void)(...args);
    };
  fake.emit = {
    deviceChanged: forward("deviceChanged"),
    deviceRemoved: forward("deviceRemoved"),
    qrCode: forward("qrCode"),
    pairingCode: forward("pairingCode"),
    notice: forward("notice"),
    revocationChanged: forward("revocationChanged"),
    revocationRemoved: forward("revocationRemoved"),
    resync: forward("resync"),
  };
  return fake;
}
