import { describe, expect, it } from "vitest";
import type { Device } from "./backend";
import { DeviceList } from "./deviceList";
import { device, unlinked } from "../test/fakeBackend";

// Revisions are given explicitly here: each case is about their order.
const at = (revision: number, overrides: Partial<Device> = {}) =>
  device({ id: "a", revision, ...overrides });
const shown = (list: DeviceList) =>
  list.devices()?.map((d) => `${d.id}:${d.state}@${d.revision}`) ?? null;

describe("DeviceList", () => {
  it("shows nothing until the first list, then the list", () => {
    const list = new DeviceList();
    expect(list.devices()).toBeNull();
    list.list({ revision: 5, devices: [at(3), device({ id: "b", revision: 5 })] });
    expect(shown(list)).toEqual(["a:logged_in@3", "b:logged_in@5"]);
  });

  it("keeps an event that came before the list, when the list is older", () => {
    const list = new DeviceList();
    list.change(at(7, { state: "logged_in" }));
    expect(list.devices()).toBeNull();
    // Read before the event's save: the device was still connecting.
    list.list({ revision: 6, devices: [at(4, { state: "connecting" })] });
    expect(shown(list)).toEqual(["a:logged_in@7"]);
  });

  it("keeps a device created during the list that the list does not know yet", () => {
    const list = new DeviceList();
    list.change(unlinked({ id: "new", revision: 9 }));
    list.list({ revision: 8, devices: [at(2)] });
    expect(shown(list)).toEqual(["a:logged_in@2", "new:disconnected@9"]);
  });

  it("takes the list's snapshot when it is newer than an event", () => {
    const list = new DeviceList();
    list.change(at(3, { state: "connecting" }));
    list.list({ revision: 10, devices: [at(8, { state: "logged_in" })] });
    expect(shown(list)).toEqual(["a:logged_in@8"]);
  });

  it("applies events after the list, and never an older one", () => {
    const list = new DeviceList();
    list.list({ revision: 2, devices: [at(2, { state: "connecting" })] });
    expect(list.change(at(5, { state: "logged_in" }))).toBe(true);
    expect(list.change(at(4, { state: "offline" }))).toBe(false);
    expect(list.change(at(5, { state: "offline" }))).toBe(false);
    expect(shown(list)).toEqual(["a:logged_in@5"]);
  });

  it("keeps events over a stale list that arrives after them (a refresh or resync)", () => {
    const list = new DeviceList();
    list.list({ revision: 1, devices: [at(1, { state: "connecting" })] });
    list.change(at(6, { state: "logged_in" }));
    list.list({ revision: 5, devices: [at(1, { state: "connecting" })] });
    expect(shown(list)).toEqual(["a:logged_in@6"]);
  });

  it("keeps a deleted device out of an older list", () => {
    const list = new DeviceList();
    list.list({ revision: 3, devices: [at(3), device({ id: "b", revision: 2 })] });
    list.remove("a", 4);
    expect(shown(list)).toEqual(["b:logged_in@2"]);
    // A list read before the delete still has it.
    list.list({ revision: 3, devices: [at(3), device({ id: "b", revision: 2 })] });
    expect(shown(list)).toEqual(["b:logged_in@2"]);
  });

  it("keeps a removal that came before the first list", () => {
    const list = new DeviceList();
    list.remove("a", 4);
    list.list({ revision: 3, devices: [at(3)] });
    expect(shown(list)).toEqual([]);
  });

  it("shows a device created again under a deleted id", () => {
    const list = new DeviceList();
    list.list({ revision: 3, devices: [at(3)] });
    list.remove("a", 4);
    list.change(unlinked({ id: "a", revision: 5 }));
    expect(shown(list)).toEqual(["a:disconnected@5"]);
  });

  it("drops a device a newer list no longer has (its removal event was missed)", () => {
    const list = new DeviceList();
    list.list({ revision: 3, devices: [at(3), device({ id: "b", revision: 2 })] });
    list.list({ revision: 9, devices: [device({ id: "b", revision: 2 })] });
    expect(shown(list)).toEqual(["b:logged_in@2"]);
    // ... and an older list that still has it does not bring it back.
    list.list({ revision: 3, devices: [at(3), device({ id: "b", revision: 2 })] });
    expect(shown(list)).toEqual(["b:logged_in@2"]);
  });

  it("keeps the same array and objects until something changes", () => {
    const list = new DeviceList();
    const b = device({ id: "b", revision: 2 });
    list.list({ revision: 2, devices: [at(1), b] });
    const first = list.devices();
    expect(list.devices()).toBe(first);
    list.change(at(3));
    const second = list.devices();
    expect(second).not.toBe(first);
    expect(second?.[1]).toBe(b);
  });

  it("ends with the newest state of every device whatever the order of arrival", () => {
    // 200 devices, each saved 5 times in rounds; a list read after the
    // third round. Every order of delivery must end with the fifth save.
    const saves = Array.from({ length: 200 }, (_, i) =>
      Array.from({ length: 5 }, (_, s) =>
        device({ id: `d${String(i).padStart(3, "0")}`, revision: s * 200 + i + 1 }),
      ),
    );
    const middle = { revision: 3 * 200, devices: saves.map((s) => s[2] as Device) };
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 20; round++) {
      const list = new DeviceList();
      const events = saves.flat().sort(() => random() - 0.5);
      const listAt = Math.floor(random() * events.length);
      events.forEach((event, n) => {
        if (n === listAt) list.list(middle);
        list.change(event);
      });
      expect(list.devices()?.map((d) => d.revision)).toEqual(saves.map((s) => s[4]?.revision));
    }
  });
});
