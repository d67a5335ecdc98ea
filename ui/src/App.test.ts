import { render, screen } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import AppHarness from "./test/AppHarness.svelte";
import type { Backend } from "./lib/backend";

function backendWith(overrides: Partial<Backend>): Backend {
  return {
    appInfo: () =>
      Promise.resolve({ productName: "WA Device Admin", version: "9.9.9", dataDir: "/tmp/data" }),
    ...overrides,
  };
}

describe("App shell", () => {
  it("shows the product name and the empty state", async () => {
    render(AppHarness, { backend: backendWith({}) });
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("WA Device Admin");
    expect(screen.getByRole("heading", { name: "No devices yet" })).toBeInTheDocument();
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
});
