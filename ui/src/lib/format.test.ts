import { describe, expect, it } from "vitest";
import { device, unlinked } from "../test/fakeBackend";
import {
  STATES,
  deviceStateWords,
  actionWords,
  countdown,
  errorWords,
  noticeTitle,
  outcomeWords,
  phoneWords,
  reasonWords,
  secondsLeft,
  stateWords,
} from "./format";

describe("word tables", () => {
  it("name every state once, in the order the filter shows them", () => {
    expect([...STATES].sort()).toEqual(Object.keys(stateWords).sort());
    const words = Object.values(stateWords);
    expect(new Set(words).size).toBe(words.length);
  });

  it("give every history action and outcome distinct words", () => {
    for (const table of [actionWords, outcomeWords]) {
      const words = Object.values(table);
      expect(words.every((w) => w.length > 0)).toBe(true);
      expect(new Set(words).size).toBe(words.length);
    }
    expect(actionWords.revocation_completed).toBe("Unlink confirmed");
    expect(outcomeWords.cancelled).toBe("Cancelled");
  });
});

describe("reasonWords", () => {
  it("says why, with the ban's end or the next try when there is one", () => {
    expect(reasonWords(unlinked({ state_reason: "removed_from_phone" }))).toBe(
      "Removed from the phone",
    );
    const banned = device({
      state: "offline",
      state_reason: "temporarily_banned",
      login_phase: null,
      ban_expires_at: "2026-11-24T14:30:00Z",
    });
    expect(reasonWords(banned)).toMatch(/^Banned until /);
    expect(reasonWords(banned)).not.toMatch(/Z|UTC|T\d\d:/);
    const retrying = device({
      state: "connecting",
      state_reason: "connection_lost",
      login_phase: null,
      next_retry_at: "2026-11-24T14:30:00Z",
    });
    expect(reasonWords(retrying)).toMatch(/^Connection lost; next try at /);
    expect(noticeTitle("replaced")).toBe("Replaced by another client");
  });
});

describe("errorWords", () => {
  it("names the error, its message and its code", () => {
    expect(errorWords({ code: "busy", message: "a login is pending" })).toBe(
      "Busy: a login is pending (code busy)",
    );
    expect(errorWords({ code: "ipc", message: "no permission" })).toBe(
      "App error: no permission (code ipc)",
    );
  });
});

describe("small formats", () => {
  it("write phone numbers, countdowns and seconds left", () => {
    expect(phoneWords("4915112345678")).toBe("+4915112345678");
    expect(phoneWords(null)).toBe("no phone number yet");
    expect(countdown(65)).toBe("1:05");
    expect(secondsLeft("2026-11-24T10:00:10Z", Date.parse("2026-11-24T10:00:00.500Z"))).toBe(10);
    expect(secondsLeft("2026-11-24T10:00:00Z", Date.parse("2026-11-24T10:01:00Z"))).toBe(0);
  });
});

describe("deviceStateWords", () => {
  it("says a device never linked is not linked yet, and a logged-out one is disconnected", () => {
    expect(deviceStateWords(unlinked({ state_reason: "created" }))).toBe("Not linked yet");
    expect(deviceStateWords(unlinked({ state_reason: "logged_out" }))).toBe("Disconnected");
    expect(deviceStateWords(device())).toBe("Logged in");
  });
});
