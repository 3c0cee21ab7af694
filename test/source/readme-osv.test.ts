import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { parseConfig, type Env } from "../../src/config";
import { MAX_RECORDS_PER_REQUEST } from "../../src/osv/admin";
import { MAX_ENTRY_BYTES } from "../../src/osv/import";
import { MAX_JSON_IMPORT_BYTES } from "../../src/osv/jobs";
import { MAX_SBOM_PACKAGES } from "../../src/osv/sbom";
import { MAX_SBOM_BYTES, MAX_SBOMS, SBOM_ARTIFACT_TYPES } from "../../src/osv/scan";

// The README's SBOM scanning section: its OSV_FEEDS example is a setting a user copies, and the bounds and types it
// states are the Worker's.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## SBOM scanning"), readme.indexOf("\n## ", readme.indexOf("## SBOM scanning") + 1));
const MiB = 1024 * 1024;

describe("the README's SBOM scanning section", () => {
  it("gives an OSV_FEEDS example the Worker accepts, of OSV's export URLs", () => {
    const block = [...section.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!).find((text) => text.startsWith("OSV_FEEDS"));
    const feeds = parseConfig({ AUTH_MODE: "open", OSV_FEEDS: (parse(block!) as { OSV_FEEDS: string }).OSV_FEEDS } as unknown as Env).OSV_FEEDS;
    expect(feeds.map((feed) => feed.ecosystem)).toEqual(["Alpine", "Debian", "PyPI"]);
    for (const feed of feeds) expect(feed.url).toBe(`https://osv-vulnerabilities.storage.googleapis.com/${feed.ecosystem}/all.zip`);
  });

  it("states the bounds the Worker has", () => {
    expect(section).toContain(`at most ${MAX_SBOMS} SBOMs`);
    expect(section).toContain(`${MAX_SBOM_BYTES / MiB} MiB of SBOM in all`);
    expect(section).toContain(`${MAX_SBOM_PACKAGES.toLocaleString("en")} packages`);
    expect(section).toContain(`inflates to at most ${MAX_ENTRY_BYTES / MiB}\nMiB`);
    expect(section).toContain(`at most ${MAX_RECORDS_PER_REQUEST.toLocaleString("en")} records or 20 s per`);
    expect(section).toContain(`at most ${MAX_JSON_IMPORT_BYTES / MiB} MiB and ${MAX_RECORDS_PER_REQUEST.toLocaleString("en")} records`);
    for (const type of SBOM_ARTIFACT_TYPES) expect(section).toContain(`\`${type}\``);
  });
});
