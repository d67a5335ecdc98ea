import { afterEach, describe, expect, it, vi } from "vitest";

// `backend.ts` is the only module that talks to Tauri: these fakes record
// what it asks for, so the names it uses can be checked against the shell's.
const invoked: string[] = [];
const listened: string[] = [];
vi.mock("@tauri-apps/api/core", () => ({
  invoke: async (command: string) => {
    invoked.push(command);
    return null;
  },
}));
vi.mock("@tauri-apps/api/event", () => ({
  listen: async (event: string) => {
    listened.push(event);
    return () => {};
  },
}));

const { tauriBackend } = await import("./backend");
const { COMMANDS, EVENTS } = await import("./bindings");

afterEach(() => {
  invoked.length = 0;
  listened.length = 0;
});

describe("tauriBackend", () => {
  it("calls every command of the shell, and only those", async () => {
    const backend = tauriBackend;
    await Promise.all([
      backend.appInfo(),
      backend.listDevices(),
      backend.getDevice("d"),
      backend.createDevice(null, ""),
      backend.renameDevice("d", "l"),
      backend.loginQr("d"),
      backend.loginCode("d", "491512345678"),
      backend.cancelLogin("d"),
      backend.reconnect("d"),
      backend.logout("d"),
      backend.deleteDevice("d"),
      backend.history("d"),
      backend.exportHistoryCsv("d"),
      backend.apiStatus(),
      backend.updateApiSettings({ enabled: false, listen: "127.0.0.1:3000", user: "admin" }),
      backend.listRevocations(),
      backend.retryRevocation("j"),
      backend.forgetRevocation("j"),
      backend.deviceWebhook("d"),
      backend.setDeviceWebhook("d", "", [], null),
    ]);
    expect([...invoked].sort()).toEqual([...COMMANDS].sort());
  });

  it("listens to every event of the shell, and only those", async () => {
    const stop = await tauriBackend.subscribe({
      deviceChanged: () => {},
      deviceRemoved: () => {},
      qrCode: () => {},
      pairingCode: () => {},
      notice: () => {},
      revocationChanged: () => {},
      revocationRemoved: () => {},
      resync: () => {},
    });
    stop();
    expect([...listened].sort()).toEqual(Object.values(EVENTS).sort());
  });
});
