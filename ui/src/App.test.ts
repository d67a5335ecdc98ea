import { render, screen } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import AppHarness from "./test/AppHarness.svelte";
import type { Backend } from "./lib/backend";

function backendWith(overrides: Partial<Backend>): Backend {
  return {
    appInfo: () =>
      Promise.resolve({ productName: "WA Device Admin", version: "9.9.9", dataDir: "/tmp/data" }),
    listDevices: () => Promise.resolve([]),
    ...overrides,
  };
}

describe("App shell", () => {
  it("shows the product name and the empty state", async () => {
    render(AppHarness, { backend: backendWith({}) });
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("WA Device Admin");
    expect(await screen.findByRole("heading", { name: "No devices yet" })).toBeInTheDocument();
    expect(await screen.findByText("Version 9.9.9")).toBeInTheDocument();
  });

  it("shows a backend error with its code", async () => {
    const backend = backendWith({
      appInfo: () => Promise.reject({ code: "internal", message: "no data folder" }),
    });
    render(AppHarness, { backend });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("internal");
    expect(alert).toHaveTextContent("no data folder");
  });

  it("lists the backend's devices with their state in words", async () => {
    const backend = backendWith({
      listDevices: () =>
        Promise.resolve([
          {
            id: "support-1",
            label: "Support desk",
            phone_number: "4915112345678",
            display_name: "Support",
            jid: "4915112345678:3@s.whatsapp.net",
            state: "logged_in",
            state_reason: "connected",
            next_retry_at: null,
            ban_expires_at: null,
            has_credentials: true,
            created_at: "2026-11-01T10:00:00Z",
            last_connected_at: "2026-11-24T09:00:00Z",
          },
        ]),
    });
    render(AppHarness, { backend });
    expect(await screen.findByText("Support desk")).toBeInTheDocument();
    expect(screen.getByText("Logged in")).toBeInTheDocument();
    expect(screen.getByText("4915112345678")).toBeInTheDocument();
    expect(screen.queryByText("No devices yet")).not.toBeInTheDocument();
  });
});
