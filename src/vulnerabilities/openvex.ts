// OpenVEX (v0.2.0; `vexctl create`): statements[] of a vulnerability (name, @id, aliases), the products it is about
// (with subcomponents, the packages in them) and a status. A statement about this image whose status is not_affected
// or fixed suppresses the matching findings of every source; a later affected or under_investigation statement for
// the same vulnerability and package lifts that again. Products inherit from the document when a statement names none.
import { object, packageOfPurl, ReportError, text, Walk, type Json, type ParsedReport, type Statement } from "./report-json";

const STATUSES = new Set<Statement["status"]>(["not_affected", "fixed", "affected", "under_investigation"]);
/** Names of one vulnerability read (its name, @id and aliases). */
const MAX_NAMES = 16;

export function parseOpenVex(document: unknown, report: string, subject: string, walk: Walk): ParsedReport {
  const root = object(document);
  if (!root || !Array.isArray(root.statements)) throw new ReportError("not an OpenVEX document (no statements array)");
  const timed: { at: number; order: number; statements: Statement[] }[] = [];
  const documentTime = time(root.timestamp);
  let order = 0;
  for (const statement of walk.objects(root.statements)) {
    const status = text(statement.status) as Statement["status"];
    if (!STATUSES.has(status)) continue;
    const products = statement.products ?? root.products;
    if (!aboutImage(products, subject, walk)) continue;
    const names = namesOf(statement.vulnerability, walk);
    const packages = packagesOf(products, statement.subcomponents, walk);
    const justification = text(statement.justification) || text(statement.impact_statement);
    const statements: Statement[] = [];
    for (const id of names) for (const pkg of packages) statements.push({ id, package: pkg, status, justification, report });
    timed.push({ at: time(statement.timestamp) ?? documentTime ?? 0, order: order++, statements });
  }
  timed.sort((a, b) => a.at - b.at || a.order - b.order);
  return { scan: false, findings: [], statements: timed.flatMap((entry) => entry.statements) };
}

function time(value: unknown): number | null {
  const at = typeof value === "string" ? Date.parse(value) : NaN;
  return Number.isFinite(at) ? at : null;
}

/** The vulnerability's name, @id (an IRI's last segment: .../CVE-2023-1234) and aliases; OpenVEX 0.0.1's is a string. */
function namesOf(value: unknown, walk: Walk): string[] {
  if (typeof value === "string") return value.trim() ? [value.trim()] : [];
  const vulnerability = object(value);
  if (!vulnerability) return [];
  const names = new Set<string>();
  const add = (name: string) => {
    if (name && names.size < MAX_NAMES) names.add(name);
  };
  add(text(vulnerability.name));
  const id = text(vulnerability["@id"]);
  add(id.includes("/") ? id.slice(id.lastIndexOf("/") + 1) : id);
  for (const alias of walk.items(vulnerability.aliases)) add(text(alias));
  return [...names];
}

/**
 * Whether the statement is about the image it is attached to: it names no product, or one of its products names this
 * digest, or names no digest at all (a name the attachment pins). A statement whose every product pins another
 * digest is about another image.
 */
function aboutImage(products: unknown, subject: string, walk: Walk): boolean {
  if (!Array.isArray(products) || products.length === 0) return true;
  const hex = subject.slice(subject.indexOf(":") + 1).toLowerCase();
  for (const product of componentsOf(products, walk)) {
    const ids = [text(product["@id"]), ...Object.values(object(product.identifiers) ?? {}).slice(0, 8).map(text)].map(decoded);
    const hashes = Object.values(object(product.hashes) ?? {}).slice(0, 8).map((value) => text(value).toLowerCase());
    if (ids.some((id) => id.includes(hex)) || hashes.includes(hex)) return true;
    const pinned = hashes.length > 0 || ids.some((id) => /sha(256|512):[0-9a-f]{32,}/i.test(id));
    if (!pinned) return true;
  }
  return false;
}

/** The packages the statement is limited to (its products' subcomponents, or 0.0.1's own), or [""] for all. */
function packagesOf(products: unknown, subcomponents: unknown, walk: Walk): string[] {
  const packages = new Set<string>();
  const add = (list: unknown) => {
    for (const component of componentsOf(list, walk)) {
      const purl = text(object(component.identifiers)?.purl) || text(component["@id"]);
      const name = packageOfPurl(purl) ?? purl;
      if (name) packages.add(name);
    }
  };
  for (const product of componentsOf(products, walk)) add(product.subcomponents);
  add(subcomponents);
  return packages.size > 0 ? [...packages].slice(0, MAX_NAMES) : [""];
}

/** Products or subcomponents: structs, or (OpenVEX 0.0.1) their identifiers as strings. */
function* componentsOf(list: unknown, walk: Walk): Generator<Json> {
  for (const item of walk.items(list)) {
    if (typeof item === "string") yield { "@id": item };
    else if (object(item)) yield item as Json;
  }
}

function decoded(value: string): string {
  try {
    return decodeURIComponent(value).toLowerCase();
  } catch {
    return value.toLowerCase();
  }
}
