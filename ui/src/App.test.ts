import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import AppHarness from "./test/AppHarness.svelte";
import { device, fakeBackend, nextRevision, unlinked } from "./test/fakeBackend";

describe("App shell", () => {
  it("shows the product name and the empty state", async () => {
    render(AppHarness, { backend: fakeBackend() });
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("WA Device Admin");
    expect(await screen.findByRole("heading", { name: "No devices yet" })).toBeInTheDocument();
    expect(await screen.findByText("Version 9.9.9")).toBeInTheDocument();
  });

  it("shows a backend error in words with its code", async () => {
    const backend = fakeBackend([], {
      appInfo: () => Promise.reject({ code: "internal", message: "no data folder" }),
    });
    render(AppHarness, { backend });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Internal error: no data folder (code internal)");
  });

  it("shows a persistent keyring banner when the keyring is unavailable", async () => {
    const backend = fakeBackend([unlinked()], {
      loginQr: () =>
        Promise.reject({ code: "keyring_unavailable", message: "no Secret Service on the bus" }),
    });
    render(AppHarness, { backend });
    await fireEvent.click(await screen.findByRole("button", { name: "Log in with QR" }));
    const banner = await screen.findByTestId("keyring-banner");
    expect(banner).toHaveTextContent("The system keyring is not available.");
    expect(banner).toHaveTextContent("Secret Service");
    // The dialog shows the error itself too, in words with its code.
    const dialog = screen.getByTestId("qr-dialog");
    expect(within(dialog).getByRole("alert")).toHaveTextContent(
      "Keyring unavailable: no Secret Service on the bus (code keyring_unavailable)",
    );
    await fireEvent.click(within(dialog).getByRole("button", { name: "Close" }));
    expect(screen.getByTestId("keyring-banner")).toBeInTheDocument();
  });

  it("shows what the start-up repaired, and nothing when all was well", async () => {
    const backend = fakeBackend([], {
      appInfo: () =>
        Promise.resolve({
          productName: "WA Device Admin",
          version: "9.9.9",
          dataDir: "/tmp/data",
          warnings: ["The app database could not be read; it was set aside as /tmp/x."],
        }),
    });
    render(AppHarness, { backend });
    const banner = await screen.findByTestId("startup-warnings");
    expect(banner).toHaveTextContent("needed repair at start-up");
    expect(banner).toHaveTextContent("set aside as /tmp/x");
  });

  it("shows no repair banner after a clean start", async () => {
    render(AppHarness, { backend: fakeBackend() });
    expect(await screen.findByText("Version 9.9.9")).toBeInTheDocument();
    expect(screen.queryByTestId("startup-warnings")).not.toBeInTheDocument();
  });

  it("lists devices with state and reason in words", async () => {
    const banned = device({
      id: "sales",
      label: "Sales",
      state: "offline",
      state_reason: "temporarily_banned",
      login_phase: null,
      ban_expires_at: "2026-11-24T14:30:00Z",
    });
    const removed = unlinked({ id: "old", label: "Old phone", state_reason: "removed_from_phone" });
    render(AppHarness, { backend: fakeBackend([device(), banned, removed]) });
    const card = (await screen.findByText("Support desk")).closest("li") as HTMLElement;
    expect(within(card).getByText("Logged in")).toBeInTheDocument();
    expect(within(card).getByText("+4915112345678")).toBeInTheDocument();
    const time = new Date("2026-11-24T14:30:00Z").toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    expect(screen.getByText(`Banned until ${time}`)).toBeInTheDocument();
    expect(screen.getByText("Removed from the phone")).toBeInTheDocument();
    const counts = screen.getByTestId("counts");
    expect(counts).toHaveTextContent("3 devices");
    expect(counts).toHaveTextContent("1 logged in");
    expect(counts).toHaveTextContent("1 offline");
    expect(counts).toHaveTextContent("1 disconnected");
  });

  it("filters the list by search text and by state", async () => {
    // jsdom needs about 25 ms per card on a loaded machine; filter.test.ts
    // checks the filtering itself with 10,000 devices.
    const devices = Array.from({ length: 150 }, (_, i) =>
      unlinked({ id: `dev-${i}`, label: `Device ${i}` }),
    );
    devices.push(device());
    const { container } = render(AppHarness, { backend: fakeBackend(devices) });
    const cards = () => [...container.querySelectorAll<HTMLElement>("li.device-card")];
    const status = () => container.querySelector(".toolbar .muted")?.textContent ?? "";
    await waitFor(() => expect(cards()).toHaveLength(151));
    const search = container.querySelector("[data-testid=search]") as HTMLInputElement;
    await fireEvent.input(search, { target: { value: "DEV-1" } });
    // dev-1, dev-10 .. dev-19, dev-100 .. dev-149
    expect(status()).toBe("Showing 61 of 151");
    await fireEvent.input(search, { target: { value: "+49 151" } });
    expect(cards().map((c) => c.dataset.deviceId)).toEqual(["support-1"]);
    await fireEvent.input(search, { target: { value: "" } });
    const filter = container.querySelector("[data-testid=state-filter]") as HTMLSelectElement;
    await fireEvent.change(filter, { target: { value: "logged_in" } });
    expect(cards().map((c) => c.dataset.deviceId)).toEqual(["support-1"]);
  }, 30_000);

  it("follows device events live and toasts notices", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await screen.findByText("Support desk");
    backend.emit.deviceChanged(
      unlinked({ id: "support-1", label: "Support desk", state_reason: "removed_from_phone" }),
    );
    backend.emit.notice({
      device_id: "support-1",
      reason: "removed_from_phone",
      message: "the device was removed in the phone's Linked devices",
    });
    expect(await screen.findByText("Disconnected")).toBeInTheDocument();
    expect(await screen.findByRole("status")).toHaveTextContent(
      "Support desk: Removed from the phone. The device was removed in the phone's Linked devices",
    );
    backend.emit.deviceRemoved({ device_id: "support-1", revision: nextRevision() });
    expect(await screen.findByText("No devices yet")).toBeInTheDocument();
  });

  it("adds a device, checking the id as it is typed", async () => {
    const backend = fakeBackend([]);
    render(AppHarness, { backend });
    await fireEvent.click(await screen.findByRole("button", { name: "Add device" }));
    const dialog = screen.getByTestId("add-dialog");
    const label = within(dialog).getByRole("textbox", { name: /Label/ });
    expect(label).toHaveFocus();
    await fireEvent.input(label, { target: { value: "Front office" } });
    const id = within(dialog).getByRole("textbox", { name: /ID/ });
    await fireEvent.input(id, { target: { value: "front office" } });
    expect(within(dialog).getByText(/Only letters/)).toBeInTheDocument();
    const add = within(dialog).getByRole("button", { name: "Add device" });
    expect(add).toBeDisabled();
    await fireEvent.input(id, { target: { value: "front-2" } });
    expect(add).toBeEnabled();
    await fireEvent.click(add);
    expect(backend.createDevice).toHaveBeenCalledWith("front-2", "Front office");
    expect(await screen.findByText("Front office")).toBeInTheDocument();
  });
});
