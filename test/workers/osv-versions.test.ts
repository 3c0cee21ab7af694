import { describe, expect, it } from "vitest";
import { affects, type AffectedEntry } from "../../src/osv/affected";
import { compareApkVersions, isApkVersion } from "../../src/osv/apk-version";
import { compareDpkgVersions, parseDpkgVersion } from "../../src/osv/dpkg-version";
import { packageOf, parsePackageUrl } from "../../src/osv/packages";
import { cvss2BaseScore, cvss3BaseScore, severityOf } from "../../src/osv/severity";
import { gemOrder, mavenOrder, pep440Order, semverOrder } from "../../src/osv/versions";

// Version ordering per ecosystem (src/osv/versions.ts) and OSV's range evaluation (src/osv/affected.ts), in workerd,
// on the cases each ecosystem's own tools are known to order in ways a naive comparison gets wrong.

function dpkg(a: string, b: string): number {
  return compareDpkgVersions(parseDpkgVersion(a)!, parseDpkgVersion(b)!);
}

describe("Debian versions (dpkg)", () => {
  it.each([
    ["1.0~rc1", "1.0", -1],
    ["1.0~rc1", "1.0~rc2", -1],
    ["1.0~~", "1.0~", -1],
    ["1.0", "1.0+dfsg", -1],
    ["1.0-1", "1.0-1+deb12u1", -1],
    ["3.0.11-1~deb12u1", "3.0.11-1~deb12u2", -1],
    ["3.0.11-1~deb12u2", "3.0.11-1", -1],
    ["1:1.0-1", "2.0-1", 1],
    ["0:2.0-1", "2.0-1", 0],
    ["1.0", "1.0-0", 0],
    ["2.36-9+deb12u4", "2.36-9+deb12u10", -1],
    ["1.2.3a", "1.2.3", 1],
    ["1.2.3a", "1.2.3+", -1],
    ["10.0", "9.99", 1],
    ["1.001", "1.1", 0],
  ])("%s vs %s is %i", (a, b, expected) => {
    expect(dpkg(a, b)).toBe(expected);
    expect(dpkg(b, a)).toBe(-expected || 0);
  });

  it("refuses what dpkg refuses", () => {
    for (const bad of ["", "abc", "1.0 beta", "x:1.0", "1:2:3", "1.0-", "-1"]) expect(parseDpkgVersion(bad), bad).toBeNull();
    expect(parseDpkgVersion("1:2.3-4")).toEqual({ epoch: 1, upstream: "2.3", revision: "4" });
    expect(parseDpkgVersion("2.3-4-5")).toEqual({ epoch: 0, upstream: "2.3-4", revision: "5" });
  });
});

describe("Alpine versions (apk)", () => {
  it.each([
    ["1.2.3-r1", "1.2.3_p1", -1],
    ["1.2.3", "1.2.3-r0", -1],
    ["1.2.3-r1", "1.2.3-r10", -1],
    ["1.2.3_rc1", "1.2.3", -1],
    ["1.2.3_alpha", "1.2.3_beta", -1],
    ["1.2.3_beta2", "1.2.3_pre1", -1],
    ["1.2.3_pre1", "1.2.3_rc1", -1],
    ["1.2.3", "1.2.3_cvs", -1],
    ["1.2.3_git20230101", "1.2.3_p0", -1],
    ["1.2.3a", "1.2.3b", -1],
    ["1.2.3a", "1.2.4", -1],
    ["1.2a", "1.2.1", -1],
    ["1.05", "1.5", -1],
    ["1.001", "1.01", -1],
    ["1.36.1-r15", "1.36.1-r16", -1],
    ["1.2", "1.2.0", -1],
    ["2.0", "10.0", -1],
    ["1.2.4-r2", "1.2.4_p1", -1],
  ])("%s < %s", (a, b, expected) => {
    expect(compareApkVersions(a, b)).toBe(expected);
    expect(compareApkVersions(b, a)).toBe(-expected);
  });

  it("knows a version from a string that is none", () => {
    for (const good of ["1", "1.2.3", "1.2.3a", "1.2.3_rc1-r0", "1.2.3_p1_git2023-r4", "1.0~abc123-r0"]) expect(isApkVersion(good), good).toBe(true);
    for (const bad of ["", "abc", "1.2.3_foo", "1.2.3-x1", "1..2", "1.2.3 "]) expect(isApkVersion(bad), bad).toBe(false);
    expect(compareApkVersions("1.2.3", "1.2.3")).toBe(0);
  });
});

describe("SemVer, PEP 440, RubyGems and Maven", () => {
  it("orders SemVer with prereleases, builds and Go's v prefix", () => {
    expect(semverOrder("1.0.0-alpha", "1.0.0-alpha.1")).toBe(-1);
    expect(semverOrder("1.0.0-rc.1", "1.0.0")).toBe(-1);
    expect(semverOrder("1.0.0+build.1", "1.0.0")).toBe(0);
    expect(semverOrder("v0.17.0", "0.17.0")).toBe(0);
    expect(semverOrder("0.0.0-20230101000000-abcdef123456", "0.1.0")).toBe(-1);
    expect(semverOrder("1.2", "1.2.0")).toBeNull();
    expect(semverOrder("not-a-version", "1.0.0")).toBeNull();
  });

  it("orders PEP 440 with dev, pre, post releases and epochs", () => {
    const ordered = ["1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.1", "1!0.5"];
    for (let i = 0; i + 1 < ordered.length; i++) expect(pep440Order(ordered[i]!, ordered[i + 1]!), `${ordered[i]} < ${ordered[i + 1]}`).toBe(-1);
    expect(pep440Order("1.0", "1.0.0")).toBe(0);
    expect(pep440Order("4.1.3.post1", "4.1.3")).toBe(1);
    expect(pep440Order("garbage!", "1.0")).toBeNull();
  });

  it("orders RubyGems prereleases before releases and ignores trailing zeros", () => {
    expect(gemOrder("2.2.6.2", "2.2.6.3")).toBe(-1);
    expect(gemOrder("1.0.a", "1.0")).toBe(-1);
    expect(gemOrder("1.0.0", "1")).toBe(0);
    expect(gemOrder("1.0.0-rc1", "1.0.0")).toBe(-1);
  });

  it("orders Maven qualifiers as Maven does", () => {
    expect(mavenOrder("2.0-alpha1", "2.0-beta9")).toBe(-1);
    expect(mavenOrder("2.0-beta9", "2.0")).toBe(-1);
    expect(mavenOrder("2.0", "2.0.0")).toBe(0);
    expect(mavenOrder("2.0-sp1", "2.0")).toBe(1);
    expect(mavenOrder("2.14.1", "2.15.0")).toBe(-1);
    expect(mavenOrder("1.0-SNAPSHOT", "1.0")).toBe(-1);
  });
});

describe("OSV range evaluation", () => {
  const entry = (ecosystem: string, ranges: AffectedEntry["ranges"], versions: string[] = []): AffectedEntry => ({ ecosystem, ranges, versions });

  it("opens at introduced, closes at fixed, and reports the fix of the interval the version is in", () => {
    const twoRanges = entry("npm", [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed: "0.2.4" }, { introduced: "1.0.0" }, { fixed: "1.2.6" }] }]);
    expect(affects(twoRanges, "0.1.0")).toEqual({ fixed: "0.2.4" });
    expect(affects(twoRanges, "0.2.4")).toBeNull();
    expect(affects(twoRanges, "0.9.0")).toBeNull();
    expect(affects(twoRanges, "1.0.0")).toEqual({ fixed: "1.2.6" });
    expect(affects(twoRanges, "1.2.6")).toBeNull();
  });

  it("sorts events that a record lists out of order", () => {
    const shuffled = entry("npm", [{ type: "SEMVER", events: [{ fixed: "1.2.6" }, { introduced: "1.0.0" }, { fixed: "0.2.4" }, { introduced: "0" }] }]);
    expect(affects(shuffled, "1.1.0")).toEqual({ fixed: "1.2.6" });
    expect(affects(shuffled, "0.5.0")).toBeNull();
  });

  it("treats last_affected as inclusive and limit as exclusive", () => {
    const last = entry("PyPI", [{ type: "ECOSYSTEM", events: [{ introduced: "4.0" }, { last_affected: "4.1.3" }] }]);
    expect(affects(last, "4.1.3")).toEqual({ fixed: "" });
    expect(affects(last, "4.1.3.post1")).toBeNull();
    expect(affects(last, "3.9")).toBeNull();
    const limited = entry("Go", [{ type: "SEMVER", events: [{ introduced: "1.0.0" }, { limit: "2.0.0" }] }]);
    expect(affects(limited, "1.5.0")).toEqual({ fixed: "" });
    expect(affects(limited, "2.0.0")).toBeNull();
    expect(affects(entry("Go", [{ type: "SEMVER", events: [{ introduced: "1.0.0" }, { limit: "*" }] }]), "9.0.0")).toEqual({ fixed: "" });
  });

  it("matches versions lists exactly, and GIT ranges only through them", () => {
    const listed = entry("PyPI", [{ type: "GIT", events: [{ introduced: "abc" }, { fixed: "def" }] }], ["1.0.0", "1.0.1"]);
    expect(affects(listed, "1.0.1")).toEqual({ fixed: "" });
    expect(affects(listed, "1.0.2")).toBeNull();
  });

  it("matches nothing with a version or an event that does not parse in the ecosystem", () => {
    const range = entry("npm", [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed: "4.17.21" }] }]);
    expect(affects(range, "not-a-version")).toBeNull();
    expect(affects(range, "x".repeat(10_000))).toBeNull();
    expect(affects(entry("npm", [{ type: "SEMVER", events: [{ introduced: "banana" }] }]), "1.0.0")).toBeNull();
    expect(affects(entry("Unknown", [{ type: "ECOSYSTEM", events: [{ introduced: "0" }] }]), "1.0")).toBeNull();
  });

  it("evaluates Debian and Alpine ranges in their own order", () => {
    expect(affects(entry("Debian:12", [{ type: "ECOSYSTEM", events: [{ introduced: "0" }, { fixed: "3.0.11-1~deb12u2" }] }]), "3.0.11-1~deb12u1")).toEqual({ fixed: "3.0.11-1~deb12u2" });
    expect(affects(entry("Alpine:v3.19", [{ type: "ECOSYSTEM", events: [{ introduced: "0" }, { fixed: "1.2.4_p1" }] }]), "1.2.4-r2")).toEqual({ fixed: "1.2.4_p1" });
  });
});

describe("package URLs", () => {
  it("maps purls to OSV ecosystems, source packages and distribution releases", () => {
    const deb = packageOf(parsePackageUrl("pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl&distro=debian-12.4")!, "");
    expect(deb).toEqual({ label: "libssl3", ecosystem: "Debian:12", names: ["openssl", "libssl3"], version: "3.0.11-1~deb12u2" });
    const sourceVersion = packageOf(parsePackageUrl("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4b1?upstream=glibc%402.36-9%2Bdeb12u4&distro=debian-12")!, "");
    expect(sourceVersion?.version).toBe("2.36-9+deb12u4");
    expect(packageOf(parsePackageUrl("pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&upstream=openssl&distro=alpine-3.19.1")!, "")?.ecosystem).toBe("Alpine:v3.19");
    expect(packageOf(parsePackageUrl("pkg:deb/ubuntu/bash@5.1-6ubuntu1?distro=ubuntu-22.04")!, "")?.ecosystem).toBe("Ubuntu:22.04:LTS");
    expect(packageOf(parsePackageUrl("pkg:npm/%40babel/core@7.0.0")!, "")).toMatchObject({ ecosystem: "npm", names: ["@babel/core"] });
    expect(packageOf(parsePackageUrl("pkg:pypi/Requests_Toolbelt@1.0.0")!, "")).toMatchObject({ ecosystem: "PyPI", names: ["requests-toolbelt"] });
    expect(packageOf(parsePackageUrl("pkg:golang/golang.org/x/net@v0.15.0")!, "")).toMatchObject({ ecosystem: "Go", names: ["golang.org/x/net"], version: "0.15.0" });
    expect(packageOf(parsePackageUrl("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1")!, "")).toMatchObject({ ecosystem: "Maven", names: ["org.apache.logging.log4j:log4j-core"] });
    expect(packageOf(parsePackageUrl("pkg:cargo/time")!, "0.1.45")).toMatchObject({ ecosystem: "crates.io", version: "0.1.45" });
    expect(packageOf(parsePackageUrl("pkg:gem/rack@2.2.6.2")!, "")?.ecosystem).toBe("RubyGems");
    expect(packageOf(parsePackageUrl("pkg:generic/thing@1.0")!, "")).toBeNull();
    for (const bad of ["", "npm/lodash@1", "pkg:", "pkg:npm", "pkg:npm/%E0%A4%A@1.0", `pkg:npm/${"a".repeat(3000)}@1`]) expect(parsePackageUrl(bad), bad).toBeNull();
  });
});

describe("severity", () => {
  it("scores CVSS vectors and prefers the database's own rating", () => {
    expect(cvss3BaseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")).toBe(9.8);
    expect(cvss3BaseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N")).toBe(6.1);
    expect(cvss3BaseScore("CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N")).toBe(0);
    expect(cvss3BaseScore("CVSS:3.1/AV:X")).toBeNull();
    expect(cvss2BaseScore("AV:N/AC:L/Au:N/C:P/I:P/A:P")).toBe(7.5);
    expect(severityOf(undefined, [{ type: "CVSS_V3", score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }])).toBe("critical");
    expect(severityOf("MODERATE", [{ type: "CVSS_V3", score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }])).toBe("medium");
    expect(severityOf(undefined, [{ type: "Ubuntu", score: "negligible" }])).toBe("low");
    expect(severityOf(undefined, [{ type: "CVSS_V4", score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N" }])).toBe("unknown");
  });
});
