import { describe, expect, it, vi } from "vitest";
import { BackendCall } from "./backendCall.svelte";

describe("BackendCall", () => {
  it("is running until the call settles, then hands over the result", async () => {
    const report = vi.fn();
    const call = new BackendCall(report);
    let finish: (value: number) => void = () => {};
    const done = vi.fn();
    const run = call.run(() => new Promise<number>((resolve) => (finish = resolve)), done);
    expect(call.running).toBe(true);
    finish(7);
    await run;
    expect(done).toHaveBeenCalledWith(7);
    expect(call.running).toBe(false);
    expect(call.error).toBeNull();
    expect(report).not.toHaveBeenCalled();
  });

  it("keeps the failure in words, runs `failed`, then reports it", async () => {
    const order: string[] = [];
    const call = new BackendCall((error) => order.push(`report ${error.code}`));
    const done = vi.fn();
    await call.run(
      () => Promise.reject({ code: "busy", message: "a logout is running" }),
      done,
      () => order.push("failed"),
    );
    expect(done).not.toHaveBeenCalled();
    expect(call.error).toEqual({ code: "busy", message: "a logout is running" });
    expect(order).toEqual(["failed", "report busy"]);
    expect(call.running).toBe(false);
  });

  it("turns a plain rejection into an app error and counts a throwing `done` as a failure", async () => {
    const call = new BackendCall(() => {});
    await call.run(() => Promise.reject("command rename_device not allowed"), vi.fn());
    expect(call.error).toEqual({ code: "ipc", message: "command rename_device not allowed" });
    await call.run(
      () => Promise.resolve(1),
      () => {
        throw { code: "internal", message: "closing failed" };
      },
    );
    expect(call.error).toEqual({ code: "internal", message: "closing failed" });
  });

  it("clears the last failure when it runs again", async () => {
    const call = new BackendCall(() => {});
    await call.run(() => Promise.reject({ code: "busy", message: "later" }), vi.fn());
    const run = call.run(() => Promise.resolve(1), vi.fn());
    expect(call.error).toBeNull();
    await run;
    expect(call.error).toBeNull();
  });
});
