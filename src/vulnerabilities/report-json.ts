// Reading a report's JSON as its author wrote it: any field may be missing, of the wrong type, or an array of a
// million entries. Every parser walks through one Walk, whose budget bounds the entries visited in a report.
import type { Finding, Severity, Suppression } from "./store";

/** Array entries one report's parser may visit, across all its arrays. */
export const MAX_VISITED = 100_000;

/** Objects and arrays in one report: what JSON.parse may build from it (8 MiB of "[{},{}…" is millions of objects). */
export const MAX_CONTAINERS = 250_000;
/** Values in one report (commas, counted as they pass): a bound on the strings and numbers JSON.parse makes. */
export const MAX_VALUES = 1_000_000;
/** Nesting of objects and arrays in one report (the formats read need a handful). */
export const MAX_NESTING = 64;

export type Json = Record<string, unknown>;

/** What a parser read from one report. */
export interface ParsedReport {
  /** The document is a scan's result (even one that found nothing); a VEX document or a plain SBOM is not. */
  scan: boolean;
  findings: Finding[];
  /** VEX statements in document order (later ones override earlier ones for the same vulnerability and package). */
  statements: Statement[];
}

/** One VEX statement's effect on a vulnerability (and package): suppressing (not_affected, fixed) or not. */
export interface Statement extends Omit<Suppression, "status"> {
  status: Suppression["status"] | "affected" | "under_investigation";
}

/** A report that is not what its media type says, with a reason for the page. */
export class ReportError extends Error {}

export class Walk {
  private visited = 0;

  constructor(private readonly limit = MAX_VISITED) {}

  /** The objects of an array (anything else: none), until the report's budget is spent. */
  *objects(value: unknown): Generator<Json> {
    for (const item of this.items(value)) {
      const found = object(item);
      if (found) yield found;
    }
  }

  *items(value: unknown): Generator<unknown> {
    if (!Array.isArray(value)) return;
    for (const item of value) {
      if (this.visited >= this.limit) return;
      this.visited++;
      yield item;
    }
  }
}

/**
 * Why a report's bytes are not parsed (too many objects, arrays or values, or too deeply nested), or null: one pass over the
 * bytes, outside strings, before JSON.parse builds anything, so what a report can cost in memory is bounded.
 */
export function shapeProblem(bytes: Uint8Array): string | null {
  let containers = 0;
  let values = 0;
  let depth = 0;
  let inString = false;
  for (let at = 0; at < bytes.length; at++) {
    const byte = bytes[at]!;
    if (inString) {
      if (byte === 0x5c) at++;
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) {
      if (++containers > MAX_CONTAINERS) return `the report holds more than ${MAX_CONTAINERS} objects and arrays`;
      if (++depth > MAX_NESTING) return `the report nests objects and arrays more than ${MAX_NESTING} deep`;
    } else if (byte === 0x7d || byte === 0x5d) depth--;
    else if (byte === 0x2c && ++values > MAX_VALUES) return `the report holds more than ${MAX_VALUES} values`;
  }
  return null;
}

export function object(value: unknown): Json | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : null;
}

/** A string field's value, trimmed ("" for anything that is not a string or a number). */
export function text(value: unknown): string {
  if (typeof value === "string") return value.trim();
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return "";
}

/** A number, or a string that is one ("7.5"); null otherwise. */
export function score(value: unknown): number | null {
  const number = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN;
  return Number.isFinite(number) ? number : null;
}

const WORDS: Record<string, Severity> = {
  critical: "critical",
  high: "high",
  important: "high",
  medium: "medium",
  moderate: "medium",
  low: "low",
  info: "low",
  negligible: "low",
  unknown: "unknown",
  none: "unknown",
};

/** A severity named by a word (CRITICAL, High, moderate, ...), or null. */
export function severityOfWord(value: unknown): Severity | null {
  return typeof value === "string" ? (WORDS[value.trim().toLowerCase()] ?? null) : null;
}

/** CVSS score bands: 9 and up critical, 7 high, 4 medium, above 0 low. */
export function severityOfScore(value: number): Severity {
  if (value >= 9) return "critical";
  if (value >= 7) return "high";
  if (value >= 4) return "medium";
  if (value > 0) return "low";
  return "unknown";
}

const RANK: Record<Severity, number> = { critical: 4, high: 3, medium: 2, low: 1, unknown: 0 };

export function worse(a: Severity, b: Severity): Severity {
  return RANK[b] > RANK[a] ? b : a;
}

/** A package's name from its purl (pkg:deb/debian/openssl@3.0.11?arch=amd64 is openssl), or null. */
export function packageOfPurl(purl: string): string | null {
  if (!purl.toLowerCase().startsWith("pkg:")) return null;
  const path = purl.slice(4).split(/[?#]/)[0]!;
  const name = path.slice(path.lastIndexOf("/") + 1).split("@")[0]!;
  try {
    return decodeURIComponent(name) || null;
  } catch {
    return name || null;
  }
}
