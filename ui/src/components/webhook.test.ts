import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import AppHarness from "../test/AppHarness.svelte";
import { device, fakeBackend } from "../test/fakeBackend";

async function openWebhook() {
  const card = (await screen.findByText("Support desk")).closest("li") as HTMLElement;
  await fireEvent.click(within(card).getByRole("button", { name: "History" }));
  const section = await screen.findByTestId("webhook-section");
  await within(section).findByRole("textbox", { name: "Address" });
  return section;
}

describe("webhook", () => {
  it("saves an address, chosen events and a secret that is never shown again", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    const section = await openWebhook();
    expect(backend.deviceWebhook).toHaveBeenCalledWith("support-1");
    const secret = within(section).getByLabelText("Secret") as HTMLInputElement;
    expect(secret).toHaveAttribute("type", "password");
    expect(secret).toHaveAttribute("placeholder", "None: deliveries are unsigned");

    await fireEvent.input(within(section).getByRole("textbox", { name: "Address" }), {
      target: { value: " https://hooks.example.com/wa " },
    });
    await fireEvent.click(within(section).getByRole("checkbox", { name: "Logged out" }));
    await fireEvent.click(within(section).getByRole("checkbox", { name: "Banned" }));
    await fireEvent.input(secret, { target: { value: "s3cret" } });
    await fireEvent.click(within(section).getByRole("button", { name: "Save webhook" }));
    expect(backend.setDeviceWebhook).toHaveBeenCalledWith(
      "support-1",
      "https://hooks.example.com/wa",
      ["device.logged_out", "device.banned"],
      "s3cret",
    );
    // Saved: the field is emptied, and says a secret is set.
    await waitFor(() => expect(secret).toHaveValue(""));
    expect(secret).toHaveAttribute("placeholder", "Set: leave empty to keep it");
    expect(within(section).getByRole("button", { name: "Remove webhook" })).toBeEnabled();
  });

  it("keeps the secret when its field stays empty, removes it when asked", async () => {
    const backend = fakeBackend([device()], {
      deviceWebhook: (id) =>
        Promise.resolve({
          device_id: id,
          url: "https://hooks.example.com/wa",
          events: ["device.banned"],
          has_secret: true,
        }),
      // Like the backend: null keeps the secret that is set.
      setDeviceWebhook: (id, url, events, secret) =>
        Promise.resolve({ device_id: id, url, events, has_secret: secret !== "" }),
    });
    render(AppHarness, { backend });
    const section = await openWebhook();
    expect(within(section).getByRole("textbox", { name: "Address" })).toHaveValue(
      "https://hooks.example.com/wa",
    );
    expect(within(section).getByRole("checkbox", { name: "Banned" })).toBeChecked();
    await fireEvent.click(within(section).getByRole("button", { name: "Save webhook" }));
    expect(backend.setDeviceWebhook).toHaveBeenLastCalledWith(
      "support-1",
      "https://hooks.example.com/wa",
      ["device.banned"],
      null,
    );
    const section2 = screen.getByTestId("webhook-section");
    await fireEvent.click(within(section2).getByRole("checkbox", { name: "Remove the secret" }));
    expect(within(section2).getByLabelText("Secret")).toBeDisabled();
    await fireEvent.click(within(section2).getByRole("button", { name: "Save webhook" }));
    expect(backend.setDeviceWebhook).toHaveBeenLastCalledWith(
      "support-1",
      "https://hooks.example.com/wa",
      ["device.banned"],
      "",
    );
  });

  it("says what is wrong with an address and does not save it", async () => {
    const backend = fakeBackend([device()]);
    render(AppHarness, { backend });
    const section = await openWebhook();
    const address = within(section).getByRole("textbox", { name: "Address" });
    const cases: [string, string][] = [
      ["ftp://example.com/", "Use an http:// or https:// address."],
      ["https://me:pw@example.com/", "Leave the user name and password out"],
      ["example.com/hook", "Not a web address"],
    ];
    for (const [value, words] of cases) {
      await fireEvent.input(address, { target: { value } });
      expect(address).toHaveAccessibleDescription(expect.stringContaining(words));
      expect(within(section).getByRole("button", { name: "Save webhook" })).toBeDisabled();
    }
    expect(backend.setDeviceWebhook).not.toHaveBeenCalled();
  });

  it("shows the backend's refusal in words", async () => {
    const backend = fakeBackend([device()], {
      setDeviceWebhook: () =>
        Promise.reject({ code: "keyring_unavailable", message: "the keyring is locked" }),
    });
    render(AppHarness, { backend });
    const section = await openWebhook();
    await fireEvent.input(within(section).getByRole("textbox", { name: "Address" }), {
      target: { value: "https://hooks.example.com/wa" },
    });
    await fireEvent.click(within(section).getByRole("button", { name: "Save webhook" }));
    expect(await within(section).findByRole("alert")).toHaveTextContent("the keyring is locked");
  });
});
