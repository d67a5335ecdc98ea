// The window's copy of the backend's devices, fed by two sources that race:
// lists (`listDevices`, at start and on every refresh or resync) and events
// (`device://changed`, `device://removed`). Every snapshot and removal
// carries the backend's revision, which only grows; per device the highest
// revision wins, whichever source brought it and in whatever order they
// arrive. So an event that came before or during a list is never lost, and a
// list that was read before an event never undoes it.
import type { Device, DeviceList as ListedDevices } from "./backend";

/** What the window knows of one id: its newest snapshot, or that it is gone. */
interface Known {
  revision: number;
  /** `null`: removed at `revision`. */
  device: Device | null;
}

export class DeviceList {
  #known = new Map<string, Known>();
  #loaded = false;
  /** The ids of present devices, ordered; rebuilt only when one comes or goes. */
  #order: string[] | null = null;
  /** The shown devices; rebuilt only after a change. */
  #shown: Device[] | null = null;

  /** Whether a list has arrived; before that, events are only kept. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** A snapshot from an event or a command's result. Returns whether it
   * was newer than what the window knew of the device. */
  change(device: Device): boolean {
    return this.#offer(device.id, { revision: device.revision, device });
  }

  /** The device was deleted; snapshots of it up to `revision` are older. */
  remove(id: string, revision: number): boolean {
    return this.#offer(id, { revision, device: null });
  }

  /** A list: each device in it replaces an older snapshot; a device known
   * only at or below the list's revision and missing from it was removed. */
  list(listed: ListedDevices): void {
    const ids = new Set<string>();
    for (const device of listed.devices) {
      ids.add(device.id);
      this.change(device);
    }
    for (const [id, known] of this.#known) {
      if (known.device && !ids.has(id) && known.revision <= listed.revision) {
        this.#offer(id, { revision: listed.revision, device: null });
      }
    }
    if (!this.#loaded) {
      this.#loaded = true;
      this.#shown = null;
    }
  }

  /** The devices to show, ordered by id; `null` until the first list. The
   * array is the same object until something changes. */
  devices(): Device[] | null {
    if (!this.#loaded) return null;
    if (this.#order === null) {
      const ids: string[] = [];
      for (const [id, known] of this.#known) if (known.device) ids.push(id);
      this.#order = ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    if (this.#shown === null) {
      this.#shown = this.#order.map((id) => this.#known.get(id)?.device as Device);
    }
    return this.#shown;
  }

  #offer(id: string, incoming: Known): boolean {
    const current = this.#known.get(id);
    if (current && current.revision >= incoming.revision) return false;
    if (!current?.device !== !incoming.device) this.#order = null;
    this.#known.set(id, incoming);
    this.#shown = null;
    return true;
  }
}
