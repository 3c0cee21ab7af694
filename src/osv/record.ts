// An OSV record (https://ossf.github.io/osv-schema/) as the registry keeps it: the fields matching needs, checked
// once where a record enters (an import), with bounds on every list and string, so that no record costs a scan more
// than those bounds. Other fields (details, references, credits, …) are ignored.
import { z } from "zod";
import type { Severity } from "../vulnerabilities/store";
import type { AffectedRange } from "./affected";
import { normalizeName } from "./packages";
import { severityOf } from "./severity";
import { MAX_VERSION_LENGTH } from "./versions";

/** One record's stored form is at most this (D1 rows are at most 2 MB; versions lists are the bulk). */
export const MAX_RECORD_ROW_BYTES = 1024 * 1024;

const version = z.string().min(1).max(MAX_VERSION_LENGTH);
const Event = z.union([
  z.looseObject({ introduced: version }),
  z.looseObject({ fixed: version }),
  z.looseObject({ last_affected: version }),
  z.looseObject({ limit: version }),
]);

const Range = z.looseObject({
  type: z.enum(["SEMVER", "ECOSYSTEM", "GIT"]),
  events: z.array(Event).min(1).max(1000),
});

const Score = z.looseObject({ type: z.string().max(32), score: z.string().max(256) });

const Affected = z.looseObject({
  package: z.looseObject({
    ecosystem: z.string().min(1).max(128),
    name: z.string().min(1).max(512),
  }),
  ranges: z.array(Range).max(100).default([]),
  // Long lists of versions are common (PyPI, Debian); a version that is no version string is dropped, not fatal.
  versions: z.array(z.unknown()).max(50_000).default([]),
  severity: z.array(Score).max(10).optional(),
  ecosystem_specific: z.looseObject({ severity: z.unknown().optional() }).optional(),
  database_specific: z.looseObject({ severity: z.unknown().optional() }).optional(),
});

export const OsvRecord = z.looseObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "an OSV id: letters, digits, '.', '_', ':' and '-', at most 128"),
  modified: z.string().min(1).max(64),
  withdrawn: z.string().max(64).optional(),
  summary: z.string().optional(),
  severity: z.array(Score).max(10).default([]),
  affected: z.array(Affected).max(1000).default([]),
  database_specific: z.looseObject({ severity: z.unknown().optional() }).optional(),
});

export interface AffectedRow {
  ecosystem: string;
  name: string;
  ranges: AffectedRange[];
  versions: string[];
  /** A severity of this package's own (affected[].severity, ecosystem_specific.severity), else null. */
  severity: Severity | null;
}

export interface Advisory {
  id: string;
  modified: string;
  withdrawn: string | null;
  summary: string;
  severity: Severity;
  affected: AffectedRow[];
}

export type ParsedRecord = { ok: true; advisory: Advisory } | { ok: false; id: string | null; reason: string };

/** A record as imported: checked, reduced to what matching needs, and within the row bound. */
export function parseRecord(value: unknown): ParsedRecord {
  const parsed = OsvRecord.safeParse(value);
  const id = typeof (value as { id?: unknown } | null)?.id === "string" ? String((value as { id: string }).id).slice(0, 128) : null;
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, id, reason: `${issue.path.join(".") || "record"}: ${issue.message}` };
  }
  const record = parsed.data;
  const affected = record.affected.map((entry): AffectedRow => {
    const own = entry.ecosystem_specific?.severity ?? entry.database_specific?.severity;
    return {
      ecosystem: entry.package.ecosystem,
      name: normalizeName(entry.package.ecosystem, entry.package.name),
      ranges: entry.ranges.map((range) => ({ type: range.type, events: range.events.map(eventOf) })),
      versions: entry.versions.filter((item): item is string => typeof item === "string" && item.length > 0 && item.length <= MAX_VERSION_LENGTH),
      severity: own !== undefined || entry.severity ? severityOf(own, entry.severity ?? []) : null,
    };
  });
  const advisory: Advisory = {
    id: record.id,
    modified: record.modified,
    withdrawn: record.withdrawn ?? null,
    summary: (record.summary ?? "").slice(0, 300),
    severity: severityOf(record.database_specific?.severity, record.severity),
    affected: affected.map((row) => (row.severity === "unknown" ? { ...row, severity: null } : row)),
  };
  const size = affected.reduce((total, row) => total + JSON.stringify(row.ranges).length + JSON.stringify(row.versions).length + row.name.length, 0);
  if (size > MAX_RECORD_ROW_BYTES) return { ok: false, id: record.id, reason: `record: its affected packages take more than ${MAX_RECORD_ROW_BYTES} bytes` };
  return { ok: true, advisory };
}

function eventOf(event: Record<string, unknown>): AffectedRange["events"][number] {
  for (const kind of ["introduced", "fixed", "last_affected", "limit"] as const) {
    if (typeof event[kind] === "string") return { [kind]: event[kind] };
  }
  return {};
}
