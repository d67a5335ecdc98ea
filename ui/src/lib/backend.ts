// The only module that talks to the Tauri backend. Components receive a
// `Backend` through context (see `context.ts`), so component tests can hand
// them a fake one instead of patching `invoke`.
import { invoke } from "@tauri-apps/api/core";
import type { AppInfo, Device, DeviceState, ServiceError } from "./bindings";

export type { AppInfo, Device, DeviceState };

/** The error shape every backend command rejects with (`{code, message}`). */
export type BackendError = ServiceError | { code: "ipc"; message: string };

export interface Backend {
  appInfo(): Promise<AppInfo>;
  listDevices(): Promise<Device[]>;
}

export function isBackendError(value: unknown): value is BackendError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as BackendError).code === "string" &&
    typeof (value as BackendError).message === "string"
  );
}

/** Turns whatever a command rejected with into a `BackendError`; a plain
 * string comes from Tauri itself (a missing permission, a bad argument). */
export function toBackendError(value: unknown): BackendError {
  if (isBackendError(value)) return value;
  return { code: "ipc", message: String(value) };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw toBackendError(error);
  }
}

export const tauriBackend: Backend = {
  appInfo: () => call<AppInfo>("app_info"),
  listDevices: () => call<Device[]>("list_devices"),
};
