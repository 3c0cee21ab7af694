// Trivy's JSON report (`trivy image --format json`): Results[].Vulnerabilities[] with VulnerabilityID, PkgName,
// InstalledVersion, FixedVersion, Severity and Title. Reports before schema version 2 are the Results array itself.
import { object, ReportError, severityOfWord, text, Walk, type ParsedReport } from "./report-json";
import type { Finding } from "./store";

export function parseTrivy(document: unknown, report: string, walk: Walk): ParsedReport {
  const root = Array.isArray(document) ? { Results: document } : object(document);
  if (!root || !("Results" in root || "SchemaVersion" in root || "ArtifactName" in root)) {
    throw new ReportError("not a Trivy report (no Results, SchemaVersion or ArtifactName)");
  }
  if (root.Results !== undefined && root.Results !== null && !Array.isArray(root.Results)) throw new ReportError("Trivy report's Results is not an array");
  const findings: Finding[] = [];
  for (const result of walk.objects(root.Results)) {
    for (const vulnerability of walk.objects(result.Vulnerabilities)) {
      const id = text(vulnerability.VulnerabilityID);
      if (!id) continue;
      findings.push({
        id,
        package: text(vulnerability.PkgName),
        installed: text(vulnerability.InstalledVersion),
        fixed: text(vulnerability.FixedVersion),
        severity: severityOfWord(vulnerability.Severity) ?? "unknown",
        title: text(vulnerability.Title),
        report,
        suppressed: false,
      });
    }
  }
  return { scan: true, findings, statements: [] };
}
