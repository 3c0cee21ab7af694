// Whether a package version is affected by one `affected[]` entry of an OSV record, by the schema's evaluation
// algorithm (https://ossf.github.io/osv-schema/#evaluation): listed in `versions`, or inside a range, whose events are
// sorted in the ecosystem's order ("0" before everything) and walked: introduced opens, fixed closes at that version,
// last_affected closes after it; a range with limit events covers only versions below one of them ("*" is infinity).
import { orderFor, type VersionOrder } from "./versions";

export interface RangeEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface AffectedRange {
  type: string;
  events: RangeEvent[];
}

export interface AffectedEntry {
  ecosystem: string;
  ranges: AffectedRange[];
  versions: string[];
}

/** What a match says: the fix to move to ("" when none is known for the range that matched). */
export interface Affected {
  fixed: string;
}

/** The entry's verdict on `version`: affected (with the fix), or null. Withdrawn records are filtered before this. */
export function affects(entry: AffectedEntry, version: string): Affected | null {
  let listed = entry.versions.includes(version);
  let fix: string | null = null;
  for (const range of entry.ranges) {
    const order = orderFor(entry.ecosystem, range.type);
    if (!order) continue;
    const inRange = rangeAffects(range, version, order);
    if (inRange) {
      if (inRange.fixed !== "" || fix === null) fix = inRange.fixed;
      listed = true;
    }
  }
  if (!listed) return null;
  return { fixed: fix ?? "" };
}

interface Point {
  kind: "introduced" | "fixed" | "last_affected" | "limit";
  version: string;
}

function pointOf(event: RangeEvent): Point | null {
  if (typeof event.introduced === "string") return { kind: "introduced", version: event.introduced };
  if (typeof event.fixed === "string") return { kind: "fixed", version: event.fixed };
  if (typeof event.last_affected === "string") return { kind: "last_affected", version: event.last_affected };
  if (typeof event.limit === "string") return { kind: "limit", version: event.limit };
  return null;
}

const KIND_ORDER = { introduced: 0, fixed: 1, last_affected: 2, limit: 3 } as const;

/** The range's verdict, or null; a range whose events do not all parse in the ecosystem's order matches nothing. */
function rangeAffects(range: AffectedRange, version: string, order: VersionOrder): Affected | null {
  if (order(version, version) === null) return null;
  const points: Point[] = [];
  for (const event of range.events) {
    const point = pointOf(event);
    if (!point) continue;
    const special = (point.kind === "introduced" && point.version === "0") || (point.kind === "limit" && point.version.includes("*"));
    if (!special && order(point.version, point.version) === null) return null;
    points.push(point);
  }
  const limits = points.filter((point) => point.kind === "limit");
  if (limits.length > 0 && !limits.some((limit) => limit.version.includes("*") || order(version, limit.version)! < 0)) return null;
  const sorted = points.filter((point) => point.kind !== "limit").sort((a, b) => compareEvents(a, b, order));
  let vulnerable = false;
  let fixed = "";
  for (const point of sorted) {
    const atOrAfter = point.version === "0" && point.kind === "introduced" ? true : order(version, point.version)! >= 0;
    if (point.kind === "introduced" && atOrAfter) vulnerable = true;
    else if (point.kind === "fixed" && atOrAfter) vulnerable = false;
    else if (point.kind === "last_affected" && order(version, point.version)! > 0) vulnerable = false;
    // The first fix above the version, in the open interval the version is in.
    if (point.kind === "fixed" && !atOrAfter && vulnerable && fixed === "") fixed = point.version;
  }
  return vulnerable ? { fixed } : null;
}

function compareEvents(a: Point, b: Point, order: VersionOrder): number {
  const aZero = a.kind === "introduced" && a.version === "0";
  const bZero = b.kind === "introduced" && b.version === "0";
  if (aZero || bZero) return aZero && bZero ? 0 : aZero ? -1 : 1;
  return order(a.version, b.version) || KIND_ORDER[a.kind] - KIND_ORDER[b.kind];
}
