// CycloneDX JSON (1.4 and later) with vulnerabilities (`trivy image --format cyclonedx --scanners vuln`, Grype,
// Dependency-Track): vulnerabilities[] with id, ratings[] (severity, score), affects[].ref naming a component by its
// bom-ref (components[], nested, give the package's name and version) and analysis.state. A BOM without a
// vulnerabilities array is an SBOM, not a scan: it says nothing here (matching SBOMs against OSV is another source).
import { object, packageOfPurl, ReportError, score, severityOfScore, severityOfWord, text, worse, Walk, type Json, type ParsedReport } from "./report-json";
import type { Finding, Severity } from "./store";

/** States in which the BOM's author says the vulnerability does not apply. */
const SUPPRESSING = new Set(["not_affected", "false_positive", "resolved", "resolved_with_pedigree"]);
/** Nesting of components[] followed. */
const MAX_DEPTH = 8;

interface Component {
  name: string;
  version: string;
}

export function parseCycloneDx(document: unknown, report: string, walk: Walk): ParsedReport {
  const root = object(document);
  if (!root || (root.bomFormat !== undefined && root.bomFormat !== "CycloneDX")) throw new ReportError("not a CycloneDX BOM");
  if (!Array.isArray(root.vulnerabilities)) return { scan: false, findings: [], statements: [] };
  const components = new Map<string, Component>();
  collect([object(root.metadata)?.component], components, walk, 0);
  collect(root.components, components, walk, 0);
  const findings: Finding[] = [];
  for (const vulnerability of walk.objects(root.vulnerabilities)) {
    const id = text(vulnerability.id);
    if (!id) continue;
    const severity = severityOf(vulnerability, walk);
    const suppressed = SUPPRESSING.has(text(object(vulnerability.analysis)?.state));
    const title = (text(vulnerability.description) || text(vulnerability.detail)).split("\n")[0]!;
    let affected = 0;
    for (const affects of walk.objects(vulnerability.affects)) {
      const ref = text(affects.ref);
      // A BOM-Link (urn:cdx:<serial>/<version>#<bom-ref>) names the component after its #.
      const component = components.get(ref) ?? components.get(ref.slice(ref.indexOf("#") + 1)) ?? { name: packageOfPurl(ref) ?? ref, version: "" };
      findings.push({
        id,
        package: component.name,
        installed: component.version,
        fixed: fixedIn(affects, walk),
        severity,
        title,
        report,
        suppressed,
      });
      affected++;
    }
    if (affected === 0) findings.push({ id, package: "", installed: "", fixed: "", severity, title, report, suppressed });
  }
  return { scan: true, findings, statements: [] };
}

/** The components (and their nested ones, to MAX_DEPTH) by bom-ref, and by purl for BOMs whose refs are purls. */
function collect(list: unknown, into: Map<string, Component>, walk: Walk, depth: number): void {
  if (depth > MAX_DEPTH) return;
  for (const component of walk.objects(list)) {
    const found = { name: text(component.name), version: text(component.version) };
    for (const key of [text(component["bom-ref"]), text(component.purl)]) if (key && !into.has(key)) into.set(key, found);
    if (component.components !== undefined) collect(component.components, into, walk, depth + 1);
  }
}

/** The worst of the ratings: a severity word, or else a score in CVSS bands. */
function severityOf(vulnerability: Json, walk: Walk): Severity {
  let severity: Severity = "unknown";
  for (const rating of walk.objects(vulnerability.ratings)) {
    const cvss = score(rating.score);
    const rated = severityOfWord(rating.severity) ?? (cvss === null ? null : severityOfScore(cvss));
    if (rated) severity = worse(severity, rated);
  }
  return severity;
}

/** A version the BOM says is unaffected (CycloneDX has no "fixed in"; scanners write the fix as unaffected). */
function fixedIn(affects: Json, walk: Walk): string {
  for (const version of walk.objects(affects.versions)) {
    if (text(version.status) === "unaffected" && text(version.version)) return text(version.version);
  }
  return "";
}
