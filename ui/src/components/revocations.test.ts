import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import AppHarness from "../test/AppHarness.svelte";
import { device, fakeBackend, revocation } from "../test/fakeBackend";
import type { PendingRevocation, RevocationTry } from "../lib/backend";
import { clockTime, dateTime } from "../lib/format";

const first = revocation();
const second = revocation({
  jid: "4917699887766:5@s.whatsapp.net",
  device_id: "sales",
  phone_number: "4917699887766",
  since: "2026-11-20T08:00:00Z",
  attempts: 7,
  next_attempt_at: "2026-11-26T08:00:00Z",
  last_error: "WhatsApp did not answer within 20 s",
});

function panel(): HTMLElement {
  return screen.getByTestId("revocations-panel");
}

function rowOrNull(jid: string): HTMLElement | null {
  return panel().querySelector<HTMLElement>(`tr[data-jid="${jid}"]`);
}

function row(jid: string): HTMLElement {
  const found = rowOrNull(jid);
  if (!found) throw new Error(`no row for ${jid}`);
  return found;
}

/** Every toast's text, in order. */
function toastTexts(): string[] {
  return [...document.querySelectorAll(".toast .toast-text")].map((t) => t.textContent ?? "");
}

afterEach(() => vi.useRealTimers());

describe("pending unlinks panel", () => {
  it("is not shown while there is no pending unlink", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await screen.findByText("Support desk");
    await waitFor(() => expect(backend.listRevocations).toHaveBeenCalled());
    expect(screen.queryByTestId("revocations-panel")).not.toBeInTheDocument();
    expect(screen.queryByText(/Pending unlinks/)).not.toBeInTheDocument();
  });

  it("lists each pending unlink above the devices, in words", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-11-24T09:30:30Z"));
    const due = revocation({
      jid: "4915550001111:2@s.whatsapp.net",
      device_id: "old",
      phone_number: null,
      next_attempt_at: "2026-11-24T09:00:00Z",
      last_error: null,
    });
    render(AppHarness, { backend: fakeBackend([device()], {}, [first, second, due]) });
    const section = await screen.findByTestId("revocations-panel");
    expect(within(section).getByRole("heading", { level: 2 })).toHaveTextContent(
      "Pending unlinks (3)",
    );
    expect(section).toHaveAccessibleName("Pending unlinks (3)");
    expect(section).toHaveTextContent(
      "WhatsApp did not confirm these logouts. The devices were reset; the app keeps each link's keys and retries the unlink until WhatsApp confirms it.",
    );
    // Above the device list.
    await screen.findByText("Support desk");
    const main = screen.getByRole("main", { name: "Devices" });
    expect(section.compareDocumentPosition(main) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();

    const cells = (jid: string) =>
      [...row(jid).querySelectorAll("th, td")].map((c) => c.textContent?.trim());
    expect(cells(first.jid)).toEqual([
      `${first.jid} Device support-1`,
      "+4915112345678",
      dateTime(first.since),
      "1",
      clockTime(first.next_attempt_at),
      "WhatsApp did not confirm the logout's unlink",
      expect.stringContaining("Try now"),
    ]);
    // Another day: the date too.
    expect(cells(second.jid)).toEqual([
      `${second.jid} Device sales`,
      "+4917699887766",
      dateTime(second.since),
      "7",
      dateTime(second.next_attempt_at),
      "WhatsApp did not answer within 20 s",
      expect.stringContaining("Try now"),
    ]);
    expect(cells(due.jid).slice(1, 6)).toEqual(["—", dateTime(due.since), "1", "due now", "—"]);
    // Each row's buttons name their link.
    expect(
      within(row(second.jid)).getByRole("button", { name: `Try now for ${second.jid}` }),
    ).toBeInTheDocument();
    expect(
      within(row(second.jid)).getByRole("button", {
        name: `Forget without unlinking… ${second.jid}`,
      }),
    ).toBeInTheDocument();
  });

  it("Try now asks the backend, shows it is busy, then shows the result and the new row", async () => {
    let answer: (value: RevocationTry) => void = () => {};
    const backend = fakeBackend(
      [],
      { retryRevocation: () => new Promise((resolve) => (answer = resolve)) },
      [first, second],
    );
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    const button = within(row(first.jid)).getByRole("button", { name: /^Try now/ });
    button.focus();
    await fireEvent.click(button);
    expect(backend.retryRevocation).toHaveBeenCalledWith(first.jid);
    expect(button).toHaveTextContent("Trying…");
    expect(button).toHaveAttribute("aria-disabled", "true");
    expect(within(row(first.jid)).getByTestId("next-try")).toHaveTextContent("trying now…");
    // A second click while it runs does not start another try.
    await fireEvent.click(button);
    expect(backend.retryRevocation).toHaveBeenCalledTimes(1);
    // The other row is not busy.
    expect(within(row(second.jid)).getByRole("button", { name: /^Try now/ })).toHaveAttribute(
      "aria-disabled",
      "false",
    );

    const tried: PendingRevocation = {
      ...first,
      attempts: 2,
      next_attempt_at: new Date(Date.now() + 120_000).toISOString(),
      last_error: "WhatsApp did not answer within 20 s",
    };
    answer({
      jid: first.jid,
      completed: false,
      message: `the unlink of ${first.jid} did not go through: WhatsApp did not answer within 20 s`,
      revocation: tried,
    });
    expect(await screen.findByRole("status")).toHaveTextContent(
      `The unlink of ${first.jid} did not go through: WhatsApp did not answer within 20 s. The app tries again at`,
    );
    const updated = row(first.jid);
    expect(updated).toHaveTextContent("WhatsApp did not answer within 20 s");
    expect(updated.querySelectorAll("td")[2]).toHaveTextContent("2");
    expect(button).toHaveTextContent("Try now");
    expect(button).toHaveAttribute("aria-disabled", "false");
    // The button keeps the focus throughout.
    expect(button).toHaveFocus();
  });

  it("Try now that ends the link removes the row with one toast, and focus goes on", async () => {
    const backend = fakeBackend(
      [device()],
      {
        retryRevocation: (jid) => {
          // Like the backend: the removal is announced before the answer.
          backend.emit.revocationRemoved({ jid, completed: true });
          return Promise.resolve({
            jid,
            completed: true,
            message: `WhatsApp confirmed the unlink of ${jid}`,
            revocation: null,
          });
        },
      },
      [first],
    );
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    const button = within(row(first.jid)).getByRole("button", { name: /^Try now/ });
    button.focus();
    await fireEvent.click(button);
    await waitFor(() => expect(screen.queryByTestId("revocations-panel")).not.toBeInTheDocument());
    await waitFor(() =>
      expect(toastTexts()).toEqual([`WhatsApp confirmed the unlink of ${first.jid}.`]),
    );
    // The panel is gone with the focused button: focus lands on the devices.
    await waitFor(() => expect(screen.getByRole("main", { name: "Devices" })).toHaveFocus());
  });

  it("shows a failed Try now in words with its code", async () => {
    const backend = fakeBackend(
      [],
      {
        retryRevocation: () =>
          Promise.reject({ code: "keyring_unavailable", message: "no Secret Service on the bus" }),
      },
      [first],
    );
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    await fireEvent.click(within(row(first.jid)).getByRole("button", { name: /^Try now/ }));
    expect(await screen.findByText(/Keyring unavailable/)).toHaveTextContent(
      `${first.jid}: Keyring unavailable: no Secret Service on the bus (code keyring_unavailable)`,
    );
    expect(screen.getByTestId("keyring-banner")).toBeInTheDocument();
    expect(row(first.jid)).toBeInTheDocument();
  });

  it("Forget asks first, says what happens, and forgets only once confirmed", async () => {
    const backend = fakeBackend([], {}, [first, second]);
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    const forget = within(row(first.jid)).getByRole("button", {
      name: /^Forget without unlinking…/,
    });
    forget.focus();
    await fireEvent.click(forget);
    let dialog = screen.getByTestId("forget-revocation-dialog");
    expect(within(dialog).getByRole("heading")).toHaveTextContent(
      "Forget the pending unlink without unlinking?",
    );
    expect(dialog).toHaveTextContent(first.jid);
    expect(dialog).toHaveTextContent("+4915112345678");
    const items = within(dialog)
      .getAllByRole("listitem")
      .map((li) => li.textContent?.replace(/\s+/g, " ").trim());
    expect(items).toEqual([
      "The keys of this link are deleted from this computer's keyring.",
      "The app stops trying to unlink it.",
      "The device may remain in the phone's Linked devices until it is removed on the phone (WhatsApp › Settings › Linked devices).",
      "The action is recorded in the device's history.",
    ]);
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    expect(within(dialog).getByRole("button", { name: "Forget without unlinking" })).toHaveClass(
      "danger",
    );

    // Cancel: nothing forgotten, focus back on the row's button.
    await fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByTestId("forget-revocation-dialog")).not.toBeInTheDocument();
    expect(forget).toHaveFocus();
    // Esc cancels too.
    await fireEvent.click(forget);
    await fireEvent.keyDown(screen.getByTestId("forget-revocation-dialog"), { key: "Escape" });
    expect(screen.queryByTestId("forget-revocation-dialog")).not.toBeInTheDocument();
    expect(backend.forgetRevocation).not.toHaveBeenCalled();

    await fireEvent.click(forget);
    dialog = screen.getByTestId("forget-revocation-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Forget without unlinking" }));
    expect(backend.forgetRevocation).toHaveBeenCalledWith(first.jid);
    await waitFor(() =>
      expect(screen.queryByTestId("forget-revocation-dialog")).not.toBeInTheDocument(),
    );
    expect(rowOrNull(first.jid)).toBeNull();
    expect(within(panel()).getByRole("heading")).toHaveTextContent("Pending unlinks (1)");
    expect(await screen.findByRole("status")).toHaveTextContent(
      `The pending unlink of ${first.jid} is forgotten`,
    );
    // The row is gone: focus goes to the panel's heading.
    await waitFor(() => expect(within(panel()).getByRole("heading")).toHaveFocus());
  });

  it("keeps the dialog open and shows the error when forgetting fails", async () => {
    const backend = fakeBackend(
      [],
      { forgetRevocation: () => Promise.reject({ code: "busy", message: "a try is running" }) },
      [first],
    );
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    await fireEvent.click(
      within(row(first.jid)).getByRole("button", { name: /^Forget without unlinking…/ }),
    );
    const dialog = screen.getByTestId("forget-revocation-dialog");
    await fireEvent.click(within(dialog).getByRole("button", { name: "Forget without unlinking" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Busy: a try is running (code busy)",
    );
    expect(within(dialog).getByRole("button", { name: "Forget without unlinking" })).toBeEnabled();
    expect(row(first.jid)).toBeInTheDocument();
  });

  it("tells in the open dialog when the pending unlink ended meanwhile", async () => {
    const backend = fakeBackend([], {}, [first, second]);
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    await fireEvent.click(
      within(row(first.jid)).getByRole("button", { name: /^Forget without unlinking…/ }),
    );
    backend.emit.revocationRemoved({ jid: first.jid, completed: true });
    const dialog = screen.getByTestId("forget-revocation-dialog");
    expect(await within(dialog).findByTestId("forget-gone")).toHaveTextContent(
      "nothing left to forget",
    );
    expect(
      within(dialog).queryByRole("button", { name: "Forget without unlinking" }),
    ).not.toBeInTheDocument();
    await fireEvent.click(within(dialog).getByRole("button", { name: "Close" }));
    expect(backend.forgetRevocation).not.toHaveBeenCalled();
  });

  it("follows the backend's events: added, tried, confirmed and forgotten", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    await screen.findByText("Support desk");
    expect(screen.queryByTestId("revocations-panel")).not.toBeInTheDocument();

    backend.emit.revocationChanged(first);
    expect(await screen.findByTestId("revocations-panel")).toHaveTextContent("Pending unlinks (1)");
    backend.emit.revocationChanged(second);
    await waitFor(() => expect(panel()).toHaveTextContent("Pending unlinks (2)"));

    // A try: the row is updated in place, not added again.
    backend.emit.revocationChanged({ ...first, attempts: 3, last_error: "connection refused" });
    await waitFor(() => expect(row(first.jid)).toHaveTextContent("connection refused"));
    expect(row(first.jid).querySelectorAll("td")[2]).toHaveTextContent("3");
    expect(panel()).toHaveTextContent("Pending unlinks (2)");
    // An older snapshot does not undo it.
    backend.emit.revocationChanged(first);
    await Promise.resolve();
    expect(row(first.jid)).toHaveTextContent("connection refused");

    // Forgotten elsewhere: gone, without a "confirmed" toast.
    backend.emit.revocationRemoved({ jid: second.jid, completed: false });
    await waitFor(() => expect(panel()).toHaveTextContent("Pending unlinks (1)"));
    expect(rowOrNull(second.jid)).toBeNull();
    expect(toastTexts()).toEqual([]);

    // Confirmed by WhatsApp: gone, with a toast; the last one hides the panel.
    backend.emit.revocationRemoved({ jid: first.jid, completed: true });
    expect(await screen.findByRole("status")).toHaveTextContent(
      `WhatsApp confirmed the unlink of ${first.jid}.`,
    );
    expect(screen.queryByTestId("revocations-panel")).not.toBeInTheDocument();
  });

  it("reloads the pending unlinks when events were missed", async () => {
    let list = [first];
    const backend = fakeBackend([], { listRevocations: () => Promise.resolve(list) });
    render(AppHarness, { backend });
    await screen.findByTestId("revocations-panel");
    list = [second];
    backend.emit.resync();
    await waitFor(() => expect(rowOrNull(first.jid)).toBeNull());
    expect(row(second.jid)).toBeInTheDocument();
  });
});
