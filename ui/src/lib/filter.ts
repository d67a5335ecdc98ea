// The device list's search and state filter, kept pure so it can be checked
// against thousands of devices.
import type { Device, DeviceState } from "./backend";

export function filterDevices(
  devices: Device[],
  query: string,
  state: DeviceState | "all",
): Device[] {
  const text = query.trim().toLowerCase();
  const digits = text.replace(/[^0-9]/g, "");
  // Text that is only a phone number ("+49 151 …") matches phone numbers only.
  const phoneOnly = /^[+0-9 ()-]+$/.test(text) && digits !== "";
  return devices.filter(
    (d) =>
      (state === "all" || d.state === state) &&
      (text === "" ||
        (!phoneOnly &&
          (d.label.toLowerCase().includes(text) || d.id.toLowerCase().includes(text))) ||
        (phoneOnly && (d.phone_number ?? "").includes(digits)) ||
        (phoneOnly && d.id.toLowerCase().includes(text))),
  );
}

export function countByState(devices: Device[]): Record<DeviceState, number> {
  const counts: Record<DeviceState, number> = {
    logged_in: 0,
    connecting: 0,
    pairing: 0,
    offline: 0,
    disconnected: 0,
  };
  for (const device of devices) counts[device.state] += 1;
  return counts;
}
