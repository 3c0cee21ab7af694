// A record's severity for the findings store: the database's own rating when it gives one (GitHub's
// database_specific.severity, Ubuntu's priority), else the CVSS v3 or v2 base score computed from the vector (CVSS
// 4.0 vectors are not scored here: their score needs FIRST's lookup tables); "unknown" otherwise.
import type { Severity } from "../vulnerabilities/store";

export interface SeverityScore {
  type: string;
  score: string;
}

const WORDS: Record<string, Severity> = {
  critical: "critical",
  high: "high",
  important: "high",
  moderate: "medium",
  medium: "medium",
  low: "low",
  negligible: "low",
};

export function severityOf(databaseSeverity: unknown, scores: readonly SeverityScore[]): Severity {
  if (typeof databaseSeverity === "string" && WORDS[databaseSeverity.toLowerCase()]) return WORDS[databaseSeverity.toLowerCase()]!;
  const ubuntu = scores.find((score) => score.type === "Ubuntu");
  if (ubuntu && WORDS[ubuntu.score.toLowerCase()]) return WORDS[ubuntu.score.toLowerCase()]!;
  for (const type of ["CVSS_V3", "CVSS_V2"]) {
    const vector = scores.find((score) => score.type === type)?.score;
    const base = vector === undefined ? null : type === "CVSS_V3" ? cvss3BaseScore(vector) : cvss2BaseScore(vector);
    if (base !== null) return ratingOf(base, type === "CVSS_V3");
  }
  return "unknown";
}

function ratingOf(score: number, v3: boolean): Severity {
  if (v3 && score >= 9) return "critical";
  if (score >= 7) return "high";
  if (score >= 4) return "medium";
  return "low";
}

function metricsOf(vector: string): Map<string, string> {
  const metrics = new Map<string, string>();
  for (const part of vector.split("/")) {
    const [key, value] = part.split(":");
    if (key && value) metrics.set(key, value);
  }
  return metrics;
}

/** CVSS v3.x base score (FIRST's specification, section 7), or null when the vector lacks a base metric. */
export function cvss3BaseScore(vector: string): number | null {
  if (!/^CVSS:3\.[01]\//.test(vector)) return null;
  const m = metricsOf(vector);
  const changed = m.get("S") === "C";
  const av = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 }[m.get("AV") ?? ""];
  const ac = { L: 0.77, H: 0.44 }[m.get("AC") ?? ""];
  const pr = (changed ? { N: 0.85, L: 0.68, H: 0.5 } : { N: 0.85, L: 0.62, H: 0.27 })[m.get("PR") ?? ""];
  const ui = { N: 0.85, R: 0.62 }[m.get("UI") ?? ""];
  const cia = ["C", "I", "A"].map((key) => ({ H: 0.56, L: 0.22, N: 0 })[m.get(key) ?? ""]);
  if (av === undefined || ac === undefined || pr === undefined || ui === undefined || cia.includes(undefined) || !["U", "C"].includes(m.get("S") ?? "")) return null;
  const [c, i, a] = cia as number[];
  const iss = 1 - (1 - c!) * (1 - i!) * (1 - a!);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  return roundUp(Math.min(changed ? 1.08 * (impact + exploitability) : impact + exploitability, 10));
}

// CVSS 3.1's Roundup: the smallest number with one decimal at least the input, free of floating-point error.
function roundUp(value: number): number {
  const integer = Math.round(value * 100_000);
  return integer % 10_000 === 0 ? integer / 100_000 : (Math.floor(integer / 10_000) + 1) / 10;
}

/** CVSS v2 base score (the v2 guide, section 3.2.1), or null when the vector lacks a base metric. */
export function cvss2BaseScore(vector: string): number | null {
  const m = metricsOf(vector.replace(/^\(|\)$/g, ""));
  const av = { L: 0.395, A: 0.646, N: 1 }[m.get("AV") ?? ""];
  const ac = { H: 0.35, M: 0.61, L: 0.71 }[m.get("AC") ?? ""];
  const au = { M: 0.45, S: 0.56, N: 0.704 }[m.get("Au") ?? ""];
  const cia = ["C", "I", "A"].map((key) => ({ N: 0, P: 0.275, C: 0.66 })[m.get(key) ?? ""]);
  if (av === undefined || ac === undefined || au === undefined || cia.includes(undefined)) return null;
  const [c, i, a] = cia as number[];
  const impact = 10.41 * (1 - (1 - c!) * (1 - i!) * (1 - a!));
  const exploitability = 20 * av * ac * au;
  const score = (0.6 * impact + 0.4 * exploitability - 1.5) * (impact === 0 ? 0 : 1.176);
  return Math.round(score * 10) / 10;
}
