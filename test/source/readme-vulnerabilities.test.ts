import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatOf } from "../../src/vulnerabilities/formats";
import { MAX_CONTAINERS, MAX_NESTING, MAX_VALUES, MAX_VISITED } from "../../src/vulnerabilities/report-json";
import { MAX_REPORT_BYTES, MAX_REPORTS } from "../../src/vulnerabilities/reports";
import { MAX_FINDINGS_PER_SOURCE } from "../../src/vulnerabilities/store";

// The README's "Vulnerability reports" section states the bounds and the media types a user attaches reports with:
// they must be the ones the Worker uses.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Vulnerability reports"), readme.indexOf("\n## ", readme.indexOf("## Vulnerability reports") + 1));

const grouped = (value: number) => value.toLocaleString("en-US");

describe("the README's vulnerability reports section", () => {
  it("states the bounds the Worker applies", () => {
    expect(section).toContain(`the newest ${MAX_REPORTS} reports per manifest, ${MAX_REPORT_BYTES / 1024 / 1024} MiB of each`);
    expect(section).toContain(`over ${MAX_REPORT_BYTES / 1024 / 1024} MiB`);
    expect(section).toContain(`more than ${grouped(MAX_CONTAINERS)} objects and arrays or ${grouped(MAX_VALUES)} values, nested more than ${MAX_NESTING} deep`);
    expect(section).toContain(`${grouped(MAX_VISITED)} array entries walked per report`);
    expect(section).toContain(`${grouped(MAX_FINDINGS_PER_SOURCE)} findings stored per manifest and source`);
  });

  it("attaches each format with an artifact type the Worker reads as that format", () => {
    const attached = [...section.matchAll(/oras attach --artifact-type (\S+) \S+ \S+?:(\S+)/g)].map((match) => [formatOf(match[1]), formatOf(match[2])]);
    expect(attached).toEqual([
      ["trivy", "trivy"],
      ["sarif", "sarif"],
      ["cyclonedx", "cyclonedx"],
      ["openvex", "openvex"],
    ]);
  });
});
