import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import AppHarness from "../test/AppHarness.svelte";
import { device, fakeBackend, unlinked } from "../test/fakeBackend";
import type { LogoutOutcome, QrCode } from "../lib/backend";

async function openFrom(cardLabel: string, button: string | RegExp) {
  const card = (await screen.findByText(cardLabel)).closest("li") as HTMLElement;
  await fireEvent.click(within(card).getByRole("button", { name: button }));
}

describe("logout confirmation", () => {
  it("names the device, lists every consequence, and starts on Cancel", async () => {
    render(AppHarness, { backend: fakeBackend([device()]) });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    expect(within(dialog).getByRole("heading")).toHaveTextContent("Log out “Support desk”?");
    expect(dialog).toHaveTextContent("Support desk (+4915112345678) will be logged out.");
    const items = within(dialog)
      .getAllByRole("listitem")
      .map((li) => li.textContent);
    expect(items).toEqual([
      "It is disconnected from WhatsApp.",
      "It is removed from the phone's Linked devices.",
      "Its credentials are deleted from this computer's keyring.",
      "Its local session data is deleted.",
      "To use it again you need a new QR code or pairing code.",
    ]);
    expect(dialog).toHaveTextContent(
      "If WhatsApp cannot be reached, the device is still reset and the app keeps retrying the unlink in the background.",
    );
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    const confirm = within(dialog).getByRole("button", { name: "Log out device" });
    expect(confirm).toHaveClass("danger");
  });

  it("enables the button only once the label or id is typed", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    const confirm = within(dialog).getByRole("button", { name: "Log out device" });
    const input = within(dialog).getByRole("textbox");
    expect(confirm).toBeDisabled();
    await fireEvent.input(input, { target: { value: "Support" } });
    expect(confirm).toBeDisabled();
    await fireEvent.input(input, { target: { value: "support-1" } });
    expect(confirm).toBeEnabled();
    await fireEvent.input(input, { target: { value: "Support desk" } });
    expect(confirm).toBeEnabled();
    await fireEvent.click(confirm);
    expect(backend.logout).toHaveBeenCalledWith("support-1");
    expect(await screen.findByRole("status")).toHaveTextContent(
      "Support desk is logged out. WhatsApp confirmed the unlink.",
    );
    expect(screen.queryByTestId("logout-dialog")).not.toBeInTheDocument();
  });

  it("needs no typing for a device that is not logged in", async () => {
    render(AppHarness, {
      backend: fakeBackend([
        device({ state: "offline", state_reason: "replaced", login_phase: null }),
      ]),
    });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    expect(within(dialog).queryByRole("textbox")).not.toBeInTheDocument();
    expect(within(dialog).getByRole("button", { name: "Log out device" })).toBeEnabled();
  });

  it("cancels on Esc and on a click outside, without logging out", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await openFrom("Support desk", "Log out…");
    await fireEvent.keyDown(screen.getByTestId("logout-dialog"), { key: "Escape" });
    expect(screen.queryByTestId("logout-dialog")).not.toBeInTheDocument();
    await openFrom("Support desk", "Log out…");
    await fireEvent.click(screen.getByTestId("logout-dialog"));
    expect(screen.queryByTestId("logout-dialog")).not.toBeInTheDocument();
    expect(backend.logout).not.toHaveBeenCalled();
  });

  it("shows progress, ignores Esc while running, and warns when WhatsApp did not confirm", async () => {
    let finish: (value: LogoutOutcome) => void = () => {};
    const backend = fakeBackend(
      [device({ state: "offline", state_reason: "replaced", login_phase: null })],
      {
        logout: () => new Promise((resolve) => (finish = resolve)),
      },
    );
    render(AppHarness, { backend });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Log out device" }));
    expect(within(dialog).getByRole("status")).toHaveTextContent("Logging out");
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeDisabled();
    await fireEvent.keyDown(dialog, { key: "Escape" });
    expect(screen.getByTestId("logout-dialog")).toBeInTheDocument();
    finish({
      had_credentials: true,
      unlink_confirmed: false,
      revocation_pending: false,
      message: "no answer",
    });
    const toast = await screen.findByText(/did not confirm the unlink/);
    expect(toast).toHaveTextContent("remove it from the phone's Linked devices");
    expect(toast).not.toHaveTextContent("retrying");
  });

  it("says the unlink is retried in the background when it is left pending", async () => {
    const backend = fakeBackend(
      [device({ state: "offline", state_reason: "replaced", login_phase: null })],
      {
        logout: () =>
          Promise.resolve({
            had_credentials: true,
            unlink_confirmed: false,
            revocation_pending: true,
            message: "pending revocation",
          }),
      },
    );
    render(AppHarness, { backend });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Log out device" }));
    const toast = await screen.findByText(/did not confirm the unlink/);
    expect(toast).toHaveTextContent(
      "Support desk is logged out. WhatsApp did not confirm the unlink yet; the app keeps retrying it in the background",
    );
    expect(toast).toHaveTextContent("Pending unlinks");
    expect(toast).not.toHaveTextContent("remove it from the phone's Linked devices");
  });

  it("keeps the dialog open and shows the error with its code", async () => {
    const backend = fakeBackend(
      [device({ state: "offline", state_reason: "replaced", login_phase: null })],
      {
        logout: () => Promise.reject({ code: "busy", message: "a logout is running" }),
      },
    );
    render(AppHarness, { backend });
    await openFrom("Support desk", "Log out…");
    const dialog = screen.getByTestId("logout-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Log out device" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Busy: a logout is running (code busy)",
    );
  });
});

describe("delete confirmation", () => {
  it("says a linked device is logged out first", async () => {
    render(AppHarness, { backend: fakeBackend([device()]) });
    await openFrom("Support desk", "Delete…");
    const dialog = screen.getByTestId("delete-dialog");
    expect(dialog).toHaveTextContent("logged out first");
    expect(dialog).toHaveTextContent(
      "If WhatsApp cannot be reached, the device is still deleted and the app keeps retrying the unlink in the background.",
    );
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
  });

  it("does not mention a logout for an unlinked device", async () => {
    render(AppHarness, { backend: fakeBackend([unlinked()]) });
    await openFrom("Front office", "Delete…");
    const dialog = screen.getByTestId("delete-dialog");
    expect(dialog).not.toHaveTextContent("logged out first");
    expect(within(dialog).getByRole("button", { name: "Delete device" })).toBeInTheDocument();
  });

  it("keeps the dialog open and shows the error with its code", async () => {
    const backend = fakeBackend([unlinked()], {
      deleteDevice: () => Promise.reject({ code: "busy", message: "a login is running" }),
    });
    render(AppHarness, { backend });
    await openFrom("Front office", "Delete…");
    const dialog = screen.getByTestId("delete-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Delete device" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Busy: a login is running (code busy)",
    );
    expect(within(dialog).getByRole("button", { name: "Delete device" })).toBeEnabled();
  });
});

describe("rename", () => {
  it("starts with the label selected, saves, and the card shows the new label", async () => {
    const backend = fakeBackend([device()], {
      // Like the backend: the rename is announced as a change, then returned.
      renameDevice: (id, label) => {
        const renamed = device({ id, label: label.trim() });
        backend.emit.deviceChanged(renamed);
        return Promise.resolve(renamed);
      },
    });
    render(AppHarness, { backend });
    await openFrom("Support desk", "Rename…");
    const dialog = screen.getByTestId("rename-dialog");
    expect(within(dialog).getByRole("heading")).toHaveTextContent("Rename “Support desk”");
    const field = within(dialog).getByRole("textbox", { name: /^Label/ }) as HTMLInputElement;
    expect(field).toHaveFocus();
    expect(field).toHaveValue("Support desk");
    expect([field.selectionStart, field.selectionEnd]).toEqual([0, "Support desk".length]);
    expect(field).toHaveAccessibleDescription(
      "Shown on the card. When empty, the card shows the id.",
    );
    const save = within(dialog).getByRole("button", { name: "Save" });
    expect(save).toBeDisabled();

    await fireEvent.input(field, { target: { value: "  Reception " } });
    expect(save).toBeEnabled();
    // What Enter in the field does; jsdom has no implicit form submission.
    await fireEvent.submit(field.form as HTMLFormElement);
    expect(backend.renameDevice).toHaveBeenCalledWith("support-1", "  Reception ");
    await waitFor(() => expect(screen.queryByTestId("rename-dialog")).not.toBeInTheDocument());
    const card = (await screen.findByText("Reception")).closest("li") as HTMLElement;
    expect(card).toHaveAttribute("data-device-id", "support-1");
    expect(screen.queryByText("Support desk")).not.toBeInTheDocument();
    expect(await screen.findByRole("status")).toHaveTextContent(
      "Renamed “Support desk” to “Reception”.",
    );
  });

  it("disables Save and says why while the label breaks the backend's rule", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await openFrom("Support desk", "Rename…");
    const dialog = screen.getByTestId("rename-dialog");
    const field = within(dialog).getByRole("textbox", { name: /^Label/ });
    const save = within(dialog).getByRole("button", { name: "Save" });

    const cases: [string, string][] = [
      ["x".repeat(101), "At most 100 characters."],
      ["Front\u0007desk", "No control characters."],
    ];
    for (const [value, message] of cases) {
      await fireEvent.input(field, { target: { value } });
      expect(field).toHaveAttribute("aria-invalid", "true");
      expect(field).toHaveAccessibleDescription(message);
      expect(save).toBeDisabled();
    }
    // Surrounding spaces are trimmed, so 100 characters between them are fine.
    await fireEvent.input(field, { target: { value: ` ${"é".repeat(100)} ` } });
    expect(field).toHaveAttribute("aria-invalid", "false");
    expect(save).toBeEnabled();

    await fireEvent.keyDown(dialog, { key: "Escape" });
    expect(screen.queryByTestId("rename-dialog")).not.toBeInTheDocument();
    expect(backend.renameDevice).not.toHaveBeenCalled();
  });

  it("shows the backend's error with its code and keeps the dialog and the typed text", async () => {
    let fail: (reason: unknown) => void = () => {};
    const backend = fakeBackend([device()], {
      renameDevice: () => new Promise((_, reject) => (fail = reject)),
    });
    render(AppHarness, { backend });
    await openFrom("Support desk", "Rename…");
    const dialog = screen.getByTestId("rename-dialog");
    const field = within(dialog).getByRole("textbox", { name: /^Label/ });
    await fireEvent.input(field, { target: { value: "Reception" } });
    await fireEvent.click(within(dialog).getByRole("button", { name: "Save" }));

    const saving = within(dialog).getByRole("button", { name: "Saving…" });
    expect(saving).toBeDisabled();
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeDisabled();
    await fireEvent.keyDown(dialog, { key: "Escape" });
    expect(screen.getByTestId("rename-dialog")).toBeInTheDocument();

    fail({ code: "not_found", message: 'no device "support-1"' });
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      'Not found: no device "support-1" (code not_found)',
    );
    expect(screen.getByTestId("rename-dialog")).toBeInTheDocument();
    expect(field).toHaveValue("Reception");
    expect(within(dialog).getByRole("button", { name: "Save" })).toBeEnabled();
  });
});

describe("QR login", () => {
  afterEach(() => vi.useRealTimers());

  const qr = (n: number, expiresAt: string): QrCode => ({
    device_id: "front-2",
    svg: `<svg xmlns="http://www.w3.org/2000/svg"><title>code ${n}</title></svg>`,
    expires_at: expiresAt,
  });

  it("shows each new code, counts down, offers Try again, and closes when linked", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    vi.setSystemTime(new Date("2026-11-24T10:00:00Z"));
    const backend = fakeBackend([unlinked()], {
      loginQr: () => Promise.resolve(qr(1, "2026-11-24T10:01:00Z")),
    });
    render(AppHarness, { backend });
    await openFrom("Front office", "Log in with QR");
    const dialog = screen.getByTestId("qr-dialog");
    expect(dialog).toHaveTextContent("Linked devices");
    expect(dialog).toHaveTextContent("Link a device");
    const image = await within(dialog).findByRole("img", { name: /QR code/ });
    expect(decodeURIComponent(image.getAttribute("src") ?? "")).toContain("code 1");
    expect(within(dialog).getByTestId("qr-countdown")).toHaveTextContent("1:00");

    backend.emit.deviceChanged(
      unlinked({ state: "pairing", state_reason: "qr_login_requested", login_phase: "waiting" }),
    );
    await vi.advanceTimersByTimeAsync(20_000);
    expect(within(dialog).getByTestId("qr-countdown")).toHaveTextContent("0:40");

    backend.emit.qrCode(qr(2, "2026-11-24T10:00:40Z"));
    await waitFor(() =>
      expect(
        decodeURIComponent(within(dialog).getByTestId("qr-image").getAttribute("src") ?? ""),
      ).toContain("code 2"),
    );
    expect(within(dialog).getByTestId("qr-countdown")).toHaveTextContent("0:20");

    backend.emit.deviceChanged(
      unlinked({ state: "disconnected", state_reason: "qr_expired", login_phase: "failed" }),
    );
    expect(await within(dialog).findByTestId("qr-expired")).toHaveTextContent("ran out");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Try again" }));
    expect(backend.loginQr).toHaveBeenCalledTimes(2);
    expect(await within(dialog).findByTestId("qr-image")).toBeInTheDocument();

    backend.emit.deviceChanged(
      unlinked({ state: "pairing", state_reason: "qr_login_requested", login_phase: "waiting" }),
    );
    backend.emit.deviceChanged(device({ id: "front-2", label: "Front office" }));
    await waitFor(() => expect(screen.queryByTestId("qr-dialog")).not.toBeInTheDocument());
    expect(await screen.findByRole("status")).toHaveTextContent(
      "Front office is linked and logged in.",
    );
  });

  it("says the device is linking once scanned, and when the login was cancelled elsewhere", async () => {
    const backend = fakeBackend([unlinked()], {
      loginQr: () => Promise.resolve(qr(1, new Date(Date.now() + 60_000).toISOString())),
    });
    render(AppHarness, { backend });
    await openFrom("Front office", "Log in with QR");
    const dialog = screen.getByTestId("qr-dialog");
    await within(dialog).findByTestId("qr-image");
    backend.emit.deviceChanged(
      unlinked({ state: "connecting", state_reason: "paired", login_phase: "linking" }),
    );
    expect(await within(dialog).findByText(/Linking the device/)).toBeInTheDocument();

    await fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(screen.queryByTestId("qr-dialog")).not.toBeInTheDocument());

    await openFrom("Front office", "Log in with QR");
    const again = screen.getByTestId("qr-dialog");
    await within(again).findByTestId("qr-image");
    backend.emit.deviceChanged(
      unlinked({
        state: "disconnected",
        state_reason: "login_cancelled",
        login_phase: "cancelled",
      }),
    );
    expect(await within(again).findByTestId("login-cancelled")).toHaveTextContent("cancelled");
    expect(within(again).getByRole("button", { name: "Try again" })).toBeInTheDocument();
    expect(within(again).getByRole("button", { name: "Close" })).toBeInTheDocument();
  });

  it("cancels the pending login when closed", async () => {
    const backend = fakeBackend([unlinked()], {
      loginQr: () => Promise.resolve(qr(1, new Date(Date.now() + 60_000).toISOString())),
    });
    render(AppHarness, { backend });
    await openFrom("Front office", "Log in with QR");
    backend.emit.deviceChanged(
      unlinked({ state: "pairing", state_reason: "qr_login_requested", login_phase: "waiting" }),
    );
    await fireEvent.keyDown(screen.getByTestId("qr-dialog"), { key: "Escape" });
    await waitFor(() => expect(backend.cancelLogin).toHaveBeenCalledWith("front-2"));
  });
});

/** One unlinked device whose code login answers `ABCD-EFGH`, valid 3 minutes. */
function codeBackend() {
  return fakeBackend([unlinked()], {
    loginCode: (id) =>
      Promise.resolve({
        device_id: id,
        code: "ABCD-EFGH",
        expires_at: new Date(Date.now() + 180_000).toISOString(),
      }),
  });
}

/** Opens Front office's code dialog and asks for a code for a valid phone. */
async function requestCode(backend: ReturnType<typeof fakeBackend>) {
  render(AppHarness, { backend });
  await openFrom("Front office", "Log in with code");
  const dialog = screen.getByTestId("code-dialog");
  await fireEvent.input(within(dialog).getByRole("textbox"), {
    target: { value: "4915112345678" },
  });
  await fireEvent.click(within(dialog).getByRole("button", { name: "Get pairing code" }));
  return dialog;
}

describe("pairing-code login", () => {
  it("checks the phone number as it is typed, then shows the code large with a copy button", async () => {
    const writeText = vi.fn(() => Promise.resolve());
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const backend = codeBackend();
    render(AppHarness, { backend });
    await openFrom("Front office", "Log in with code");
    const dialog = screen.getByTestId("code-dialog");
    const phone = within(dialog).getByRole("textbox", { name: /Phone number/ });
    expect(phone).toHaveFocus();
    const submit = within(dialog).getByRole("button", { name: "Get pairing code" });
    expect(submit).toBeDisabled();

    const cases: [string, RegExp][] = [
      ["12345", /Too short/],
      ["0151 2345678", /not 0/],
      ["+49 (151) 2345678", /Only digits/],
      ["1234567890123456", /Too long/],
    ];
    for (const [value, message] of cases) {
      await fireEvent.input(phone, { target: { value } });
      expect(within(dialog).getByText(message)).toBeInTheDocument();
      expect(phone).toHaveAttribute("aria-invalid", "true");
      expect(submit).toBeDisabled();
    }
    await fireEvent.input(phone, { target: { value: "+49 151-2345678" } });
    expect(phone).toHaveAttribute("aria-invalid", "false");
    expect(submit).toBeEnabled();
    await fireEvent.click(submit);
    expect(backend.loginCode).toHaveBeenCalledWith("front-2", "+49 151-2345678");

    expect(await within(dialog).findByTestId("pairing-code")).toHaveTextContent("ABCD-EFGH");
    expect(dialog).toHaveTextContent("Link with phone number instead");
    expect(dialog).toHaveTextContent("+491512345678");
    expect(dialog).toHaveTextContent(/Valid for 3:00|Valid for 2:59/);
    await fireEvent.click(within(dialog).getByRole("button", { name: "Copy code" }));
    expect(writeText).toHaveBeenCalledWith("ABCD-EFGH");
  });

  it("says when the code expired or was refused, and offers to try again", async () => {
    const backend = codeBackend();
    const dialog = await requestCode(backend);
    await within(dialog).findByTestId("pairing-code");
    backend.emit.deviceChanged(
      unlinked({ state: "disconnected", state_reason: "pairing_failed", login_phase: "failed" }),
    );
    expect(await within(dialog).findByTestId("code-expired")).toHaveTextContent("refused");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(backend.loginCode).toHaveBeenCalledTimes(2));

    backend.emit.deviceChanged(device({ id: "front-2", label: "Front office" }));
    await waitFor(() => expect(screen.queryByTestId("code-dialog")).not.toBeInTheDocument());
  });

  it("shows the backend's refusal in words with its code", async () => {
    const backend = fakeBackend([unlinked()], {
      loginCode: () =>
        Promise.reject({ code: "whatsapp_error", message: "WhatsApp sent no pairing code" }),
    });
    const dialog = await requestCode(backend);
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "WhatsApp error: WhatsApp sent no pairing code (code whatsapp_error)",
    );
  });
});

describe("REST API setting", () => {
  async function openApiDialog(backend = fakeBackend([device()])) {
    render(AppHarness, { backend });
    await fireEvent.click(await screen.findByRole("button", { name: "REST API…" }));
    const dialog = screen.getByTestId("api-dialog");
    await waitFor(() => expect(dialog).toHaveTextContent("Not serving."));
    return { backend, dialog };
  }

  it("is off by default and needs a password before it can be turned on", async () => {
    const { backend, dialog } = await openApiDialog();
    const toggle = within(dialog).getByRole("checkbox");
    expect(toggle).not.toBeChecked();
    expect(toggle).toHaveFocus();
    await fireEvent.click(toggle);
    const save = within(dialog).getByRole("button", { name: "Save" });
    expect(save).toBeDisabled();
    expect(dialog).toHaveTextContent("Set a password to serve the API.");
    await fireEvent.input(within(dialog).getByLabelText(/^Password/), {
      target: { value: "s3cret" },
    });
    expect(save).toBeEnabled();
    await fireEvent.click(save);
    expect(backend.updateApiSettings).toHaveBeenCalledWith({
      enabled: true,
      listen: "127.0.0.1:3000",
      user: "admin",
      password: "s3cret",
    });
    await waitFor(() =>
      expect(within(dialog).getByTestId("api-status")).toHaveTextContent(
        "Serving on http://127.0.0.1:3000",
      ),
    );
    // The password field is cleared: it is never shown again.
    expect(within(dialog).getByLabelText(/^Password/)).toHaveValue("");
  });

  it("refuses a non-loopback address before asking the backend", async () => {
    const { backend, dialog } = await openApiDialog();
    await fireEvent.input(within(dialog).getByLabelText(/^Address/), {
      target: { value: "0.0.0.0:3000" },
    });
    expect(dialog).toHaveTextContent("A loopback address and port");
    expect(within(dialog).getByRole("button", { name: "Save" })).toBeDisabled();
    expect(backend.updateApiSettings).not.toHaveBeenCalled();
  });

  it("shows the backend's refusal with its code", async () => {
    const backend = fakeBackend([device()], {
      updateApiSettings: () =>
        Promise.reject({
          code: "invalid_setting",
          message: "cannot listen on 127.0.0.1:3000: Address in use",
        }),
    });
    const { dialog } = await openApiDialog(backend);
    await fireEvent.click(within(dialog).getByRole("checkbox"));
    await fireEvent.input(within(dialog).getByLabelText(/^Password/), {
      target: { value: "pw" },
    });
    await fireEvent.click(within(dialog).getByRole("button", { name: "Save" }));
    expect(await within(dialog).findByText(/Address in use/)).toHaveTextContent(
      "Invalid setting: cannot listen on 127.0.0.1:3000: Address in use (code invalid_setting)",
    );
  });
});
