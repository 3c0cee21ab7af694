// Version ordering per OSV ecosystem: what a range's events are compared with. Each ecosystem's own rules where the
// registry knows them (SemVer for npm, Go, crates.io and SEMVER ranges; PEP 440 for PyPI; dpkg for Debian and Ubuntu;
// apk for Alpine and Wolfi; Gem::Version for RubyGems; Maven's ordering, approximated, for Maven and NuGet); any
// other ecosystem's ECOSYSTEM ranges are not evaluated, only its explicit versions lists.
import { compare as comparePep440, valid as validPep440 } from "@renovatebot/pep440";
import parseSemver from "semver/functions/parse";
import { compareApkVersions, isApkVersion } from "./apk-version";
import { compareDpkgVersions, parseDpkgVersion } from "./dpkg-version";

/** Orders two versions of one ecosystem; null when either is not a version there (an event then matches nothing). */
export type VersionOrder = (a: string, b: string) => number | null;

/** Longer strings are not versions: nobody's version rules need them, and every comparison pays for their length. */
export const MAX_VERSION_LENGTH = 128;

const bounded =
  (order: VersionOrder): VersionOrder =>
  (a, b) =>
    a.length > MAX_VERSION_LENGTH || b.length > MAX_VERSION_LENGTH ? null : order(a, b);

export const semverOrder: VersionOrder = bounded((a, b) => {
  const left = parseSemver(a.replace(/^v/, ""));
  const right = parseSemver(b.replace(/^v/, ""));
  return left && right ? left.compare(right) : null;
});

export const pep440Order: VersionOrder = bounded((a, b) => (validPep440(a) && validPep440(b) ? Math.sign(comparePep440(a, b)) : null));

export const dpkgOrder: VersionOrder = bounded((a, b) => {
  const left = parseDpkgVersion(a);
  const right = parseDpkgVersion(b);
  return left && right ? compareDpkgVersions(left, right) : null;
});

export const apkOrder: VersionOrder = bounded((a, b) => (isApkVersion(a) && isApkVersion(b) ? compareApkVersions(a, b) : null));

// Gem::Version: numbers and letter runs; a letter run makes a prerelease, lower than any number in its place.
const GEM = /^[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

function gemSegments(version: string): (number | string)[] | null {
  if (!GEM.test(version)) return null;
  const segments = version.replace(/-/g, ".pre.").match(/[0-9]+|[a-z]+/gi)!.map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  // Trailing zeros of the release part and of the prerelease part do not count ("1.0" == "1", "1.0.a" == "1.a").
  const firstLetter = segments.findIndex((part) => typeof part === "string");
  const release = firstLetter < 0 ? segments : segments.slice(0, firstLetter);
  const prerelease = firstLetter < 0 ? [] : segments.slice(firstLetter);
  while (release.length > 1 && release.at(-1) === 0) release.pop();
  while (prerelease.length > 0 && prerelease.at(-1) === 0) prerelease.pop();
  return [...release, ...prerelease];
}

export const gemOrder: VersionOrder = bounded((a, b) => {
  const left = gemSegments(a);
  const right = gemSegments(b);
  if (!left || !right) return null;
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const l = left[index] ?? 0;
    const r = right[index] ?? 0;
    if (l === r) continue;
    if (typeof l === "string" && typeof r === "number") return -1;
    if (typeof l === "number" && typeof r === "string") return 1;
    return l < r ? -1 : 1;
  }
  return 0;
});

// Maven's ComparableVersion, approximated: numbers and qualifiers split at '.', '-' and digit/letter changes; a
// number outranks a qualifier; known qualifiers in Maven's order, the release ("", "ga", "final") after the
// prereleases and before "sp"; other qualifiers after those, alphabetically.
const QUALIFIERS: Record<string, number> = { alpha: 1, a: 1, beta: 2, b: 2, milestone: 3, m: 3, rc: 4, cr: 4, snapshot: 5, "": 6, ga: 6, final: 6, release: 6, sp: 7 };
const MAVEN = /^[0-9A-Za-z]+(?:[.\-_+][0-9A-Za-z]+)*$/;

function mavenItems(version: string): (number | string)[] | null {
  if (!MAVEN.test(version)) return null;
  const items = version.toLowerCase().match(/[0-9]+|[a-z]+/g)!.map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  while (items.length > 1 && (items.at(-1) === 0 || QUALIFIERS[items.at(-1) as string] === 6)) items.pop();
  return items;
}

function compareQualifiers(a: string, b: string): number {
  const left = QUALIFIERS[a] ?? 8;
  const right = QUALIFIERS[b] ?? 8;
  if (left !== right) return left < right ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

export const mavenOrder: VersionOrder = bounded((a, b) => {
  const left = mavenItems(a);
  const right = mavenItems(b);
  if (!left || !right) return null;
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const l = left[index] ?? (typeof right[index] === "number" ? 0 : "");
    const r = right[index] ?? (typeof left[index] === "number" ? 0 : "");
    if (l === r) continue;
    if (typeof l === "number" && typeof r === "number") return l < r ? -1 : 1;
    if (typeof l === "number") return 1;
    if (typeof r === "number") return -1;
    const order = compareQualifiers(l, r);
    if (order !== 0) return order;
  }
  return 0;
});

const BY_ECOSYSTEM: Record<string, VersionOrder> = {
  npm: semverOrder,
  Go: semverOrder,
  "crates.io": semverOrder,
  Hex: semverOrder,
  Pub: semverOrder,
  SwiftURL: semverOrder,
  PyPI: pep440Order,
  Debian: dpkgOrder,
  Ubuntu: dpkgOrder,
  Alpine: apkOrder,
  Wolfi: apkOrder,
  Chainguard: apkOrder,
  RubyGems: gemOrder,
  Maven: mavenOrder,
  NuGet: mavenOrder,
};

/** The ecosystem without its release suffix: "Debian:12" -> "Debian", "Alpine:v3.19" -> "Alpine". */
export function ecosystemBase(ecosystem: string): string {
  const colon = ecosystem.indexOf(":");
  return colon < 0 ? ecosystem : ecosystem.slice(0, colon);
}

/** The order a range of `type` is evaluated in: SEMVER ranges are SemVer whatever the ecosystem; GIT ranges none. */
export function orderFor(ecosystem: string, type: string): VersionOrder | null {
  if (type === "SEMVER") return semverOrder;
  if (type === "ECOSYSTEM") return BY_ECOSYSTEM[ecosystemBase(ecosystem)] ?? null;
  return null;
}

/** Whether `version` is a version in the ecosystem (a package whose version is not is matched by versions lists only). */
export function isVersion(ecosystem: string, version: string): boolean {
  const order = BY_ECOSYSTEM[ecosystemBase(ecosystem)];
  return order !== undefined && order(version, version) === 0;
}
