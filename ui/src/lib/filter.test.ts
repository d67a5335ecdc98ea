import { describe, expect, it } from "vitest";
import { device, unlinked } from "../test/fakeBackend";
import { countByState, filterDevices } from "./filter";

const many = Array.from({ length: 10_000 }, (_, i) =>
  i % 10 === 0
    ? device({ id: `dev-${i}`, label: `Desk ${i}`, phone_number: `49151${i}` })
    : unlinked({ id: `dev-${i}`, label: `Phone ${i}` }),
);

describe("filterDevices", () => {
  it("matches label and id case-insensitively", () => {
    expect(filterDevices(many, "DESK 999", "all").map((d) => d.id)).toEqual(["dev-9990"]);
    expect(filterDevices(many, "phone 99", "all")).toHaveLength(100); // 99, 991..999, 9901..9999 (not multiples of 10)
    expect(filterDevices(many, "DEV-9999", "all").map((d) => d.id)).toEqual(["dev-9999"]);
  });

  it("matches phone numbers typed with + and spaces", () => {
    expect(filterDevices(many, "+49 151 9990", "all").map((d) => d.id)).toEqual(["dev-9990"]);
  });

  it("filters by state, alone and with text", () => {
    expect(filterDevices(many, "", "logged_in")).toHaveLength(1000);
    expect(filterDevices(many, "phone", "logged_in")).toHaveLength(0);
    expect(filterDevices(many, "", "all")).toHaveLength(10_000);
  });

  it("stays fast with 10,000 devices", () => {
    const started = performance.now();
    for (const query of ["d", "de", "des", "desk", "desk 9"]) filterDevices(many, query, "all");
    countByState(many);
    // Five keystrokes over 10,000 devices; generous for a loaded CI machine.
    expect(performance.now() - started).toBeLessThan(500);
  });
});
