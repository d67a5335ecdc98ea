// The backend's input rules (src-tauri/core/src/model.rs), checked as the
// admin types. The backend checks again; these only explain early.

export const MAX_DEVICE_ID_LEN = 64;
export const MAX_LABEL_CHARS = 100;

export type Check = { ok: true; value: string } | { ok: false; message: string };

/** An optional device id: empty means "generate one". */
export function checkDeviceId(input: string): Check {
  if (input === "") return { ok: true, value: "" };
  if (input.length > MAX_DEVICE_ID_LEN) {
    return { ok: false, message: `At most ${MAX_DEVICE_ID_LEN} characters.` };
  }
  if (!/^[A-Za-z0-9._-]+$/.test(input)) {
    return { ok: false, message: "Only letters A–Z and a–z, digits, '.', '_' and '-'." };
  }
  if (input === "." || input === "..") {
    return { ok: false, message: "'.' and '..' are not allowed." };
  }
  return { ok: true, value: input };
}

export function checkLabel(input: string): Check {
  const label = input.trim();
  if ([...label].length > MAX_LABEL_CHARS) {
    return { ok: false, message: `At most ${MAX_LABEL_CHARS} characters.` };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(label)) {
    return { ok: false, message: "No control characters." };
  }
  return { ok: true, value: label };
}

/** A phone number for pairing by code, normalized to digits like the backend does. */
export function checkPhoneNumber(input: string): Check {
  const digits = input.replace(/[+ -]/g, "");
  if (digits === "") {
    return { ok: false, message: "Enter the phone's number, country code first." };
  }
  if (!/^[0-9]+$/.test(digits)) {
    return { ok: false, message: "Only digits, '+', spaces and dashes." };
  }
  if (digits.length < 7) return { ok: false, message: "Too short: 7 to 15 digits." };
  if (digits.length > 15) return { ok: false, message: "Too long: 7 to 15 digits." };
  if (digits.startsWith("0")) {
    return { ok: false, message: "Start with the country code, not 0 (e.g. +49 151 2345678)." };
  }
  return { ok: true, value: digits };
}
