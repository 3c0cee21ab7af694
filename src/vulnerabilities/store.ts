// The findings store: what every source of vulnerability findings writes (attached reports, src/vulnerabilities/
// reports.ts; a scanner of the registry's own, such as "osv-scan") and what the tag API, the UI and pull policies
// read. Tables: migrations/0014_vulnerability_findings.sql; SQL: src/storage/vulnerability-records.ts.
import type { Database } from "../storage/database";
import { VulnerabilityRecords } from "../storage/vulnerability-records";

export const SEVERITIES = ["critical", "high", "medium", "low", "unknown"] as const;
export type Severity = (typeof SEVERITIES)[number];

/** One vulnerability in one package of one manifest, as a source reported it. */
export interface Finding {
  /** CVE-…, GHSA-…, OSV's id, or a SARIF rule's id. */
  id: string;
  /** The package's name ("" when the report names none). */
  package: string;
  /** The installed version ("" when unknown). */
  installed: string;
  /** The first fixed version ("" when no fix is known). */
  fixed: string;
  severity: Severity;
  /** A line saying what it is ("" when the report has none). */
  title: string;
  /** The referrer manifest that reported it; null for a scanner's own findings. */
  report: string | null;
  /** The source itself says the manifest is not affected (CycloneDX analysis.state). */
  suppressed: boolean;
}

/** A VEX statement for one manifest: it suppresses the matching findings of every source. */
export interface Suppression {
  id: string;
  /** The package it is limited to ("" for every package). */
  package: string;
  status: "not_affected" | "fixed";
  justification: string;
  /** The referrer manifest (the VEX document) it came from. */
  report: string;
}

/** A report a source could not read, and why. */
export interface ScanProblem {
  report: string;
  reason: string;
}

export interface VulnerabilitySummary {
  /** Some source read something for this manifest (a scan report, an SBOM scan). */
  scanned: boolean;
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
  /** Unsuppressed findings with a fixed version. */
  fixable: number;
  /** Findings suppressed by VEX or by their own report; not counted by severity. */
  suppressed: number;
  /** Epoch milliseconds of the newest scan that read something; null when none did. */
  scannedAt: number | null;
}

/** A finding as read back: suppressed by its report or by a VEX statement (which one, when VEX). */
export interface StoredFinding extends Finding {
  source: string;
  vex: { status: Suppression["status"]; justification: string; report: string } | null;
}

/** What a source recorded about its last look at a manifest. */
export interface StoredScan {
  source: string;
  /** The source's fingerprint of what it examined: compare it to decide whether to scan again. */
  inputs: string;
  scanned: boolean;
  problems: ScanProblem[];
  findings: number;
  /** Findings past MAX_FINDINGS_PER_SOURCE, not stored. */
  dropped: number;
  scannedAt: number;
}

export interface ScanRecord {
  /** The source's fingerprint of what it examined ("" when it has none). */
  inputs?: string;
  /** Whether anything was read (default true: a scan that ran and found nothing is a clean scan). */
  scanned?: boolean;
  problems?: ScanProblem[];
  /** Findings the source left out before calling (past its own bounds), added to those past the cap. */
  dropped?: number;
  /** VEX statements the source read; replaced with its findings. */
  suppressions?: Suppression[];
  now?: number;
}

/** Findings stored per manifest and source; the rest are counted as dropped. */
export const MAX_FINDINGS_PER_SOURCE = 2000;
/** VEX statements stored per manifest and source. */
export const MAX_SUPPRESSIONS_PER_SOURCE = 2000;

/**
 * Replaces everything `source` said about a manifest (its findings, suppressions and scan record) and recomputes the
 * manifest's summary over every source, in one batch: a reader sees the old state or the new one.
 */
export async function replaceFindings(
  db: Database,
  repository: string,
  digest: string,
  source: string,
  findings: Finding[],
  scan: ScanRecord = {},
): Promise<void> {
  const kept = findings.slice(0, MAX_FINDINGS_PER_SOURCE).map(bounded);
  const suppressions = (scan.suppressions ?? []).slice(0, MAX_SUPPRESSIONS_PER_SOURCE).map((s) => ({
    ...s,
    id: s.id.slice(0, MAX_ID),
    package: s.package.slice(0, MAX_NAME),
    justification: s.justification.slice(0, MAX_TEXT),
  }));
  await new VulnerabilityRecords(db).replace(repository, digest, source, kept, findings.length - kept.length + (scan.dropped ?? 0), suppressions, scan);
}

/** The manifest's summary over every source as stored; null when no source has recorded anything for it. */
export async function summaryOf(db: Database, repository: string, digest: string): Promise<VulnerabilitySummary | null> {
  return (await summariesOf(db, repository, [digest])).get(digest) ?? null;
}

/** Summaries of several manifests of a repository, in one statement (digests without one are absent). */
export async function summariesOf(db: Database, repository: string, digests: string[]): Promise<Map<string, VulnerabilitySummary>> {
  return new VulnerabilityRecords(db).summaries(repository, digests);
}

/** A manifest's findings, worst first, at most `limit`. */
export async function findingsOf(db: Database, repository: string, digest: string, limit = MAX_FINDINGS_PER_SOURCE): Promise<StoredFinding[]> {
  return new VulnerabilityRecords(db).findings(repository, digest, limit);
}

/** What `source` last recorded for a manifest, or null. */
export async function scanOf(db: Database, repository: string, digest: string, source: string): Promise<StoredScan | null> {
  return new VulnerabilityRecords(db).scan(repository, digest, source);
}

// Field lengths stored: a report's strings are its author's, and every reader of the table pays for them.
const MAX_ID = 128;
const MAX_NAME = 256;
const MAX_TEXT = 300;

function bounded(finding: Finding): Finding {
  return {
    id: finding.id.slice(0, MAX_ID),
    package: finding.package.slice(0, MAX_NAME),
    installed: finding.installed.slice(0, MAX_NAME),
    fixed: finding.fixed.slice(0, MAX_NAME),
    severity: finding.severity,
    title: finding.title.slice(0, MAX_TEXT),
    report: finding.report,
    suppressed: finding.suppressed,
  };
}

export const NOT_SCANNED: VulnerabilitySummary = {
  scanned: false,
  critical: 0,
  high: 0,
  medium: 0,
  low: 0,
  unknown: 0,
  fixable: 0,
  suppressed: 0,
  scannedAt: null,
};
