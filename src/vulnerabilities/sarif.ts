// SARIF 2.1.0 (`trivy image --format sarif`, and other scanners' code-scanning output): runs[].results[] with
// ruleId, level, message and properties; the rules in runs[].tool.driver.rules[] carry properties.security-severity
// (a CVSS score) and help. Scanners of images (Trivy, Grype) name the package and versions in the message's lines
// ("Package: openssl", "Installed Version: 3.0.11", "Fixed Version: 3.0.13"), which is the only place SARIF has them.
import { object, ReportError, score, severityOfScore, severityOfWord, text, Walk, type Json, type ParsedReport } from "./report-json";
import type { Finding, Severity } from "./store";

const LEVELS: Record<string, Severity> = { error: "high", warning: "medium", note: "low" };

export function parseSarif(document: unknown, report: string, walk: Walk): ParsedReport {
  const root = object(document);
  if (!root || !Array.isArray(root.runs)) throw new ReportError("not a SARIF log (no runs array)");
  const findings: Finding[] = [];
  for (const run of walk.objects(root.runs)) {
    const rules: Json[] = [];
    const byId = new Map<string, Json>();
    for (const rule of walk.objects(object(object(run.tool)?.driver)?.rules)) {
      rules.push(rule);
      const id = text(rule.id);
      if (id && !byId.has(id)) byId.set(id, rule);
    }
    for (const result of walk.objects(run.results)) {
      const index = typeof result.ruleIndex === "number" ? result.ruleIndex : -1;
      const ruleId = text(result.ruleId) || text(object(result.rule)?.id) || text(rules[index]?.id);
      if (!ruleId) continue;
      const rule = byId.get(ruleId) ?? rules[index] ?? null;
      const message = text(object(result.message)?.text);
      const help = text(object(rule?.help)?.text);
      findings.push({
        id: ruleId.replace(/^\[[^\]]*\]\s*/, ""),
        package: line(message, "Package") || line(help, "Package"),
        installed: line(message, "Installed Version") || line(help, "Installed Version"),
        fixed: line(message, "Fixed Version") || line(help, "Fixed Version"),
        severity: severityOf(result, rule),
        title: text(object(rule?.shortDescription)?.text) || message.split("\n")[0]!,
        report,
        suppressed: suppressedIn(result, walk),
      });
    }
  }
  return { scan: true, findings, statements: [] };
}

/** security-severity (the result's, then its rule's), a severity word among the tags, then the level. */
function severityOf(result: Json, rule: Json | null): Severity {
  for (const properties of [object(result.properties), object(rule?.properties)]) {
    const cvss = score(properties?.["security-severity"]);
    if (cvss !== null) return severityOfScore(cvss);
  }
  for (const properties of [object(result.properties), object(rule?.properties)]) {
    const tags = properties?.tags;
    if (!Array.isArray(tags)) continue;
    for (const tag of tags.slice(0, 16)) {
      const word = severityOfWord(tag);
      if (word) return word;
    }
  }
  const level = text(result.level) || text(object(rule?.defaultConfiguration)?.level);
  return LEVELS[level] ?? "unknown";
}

/** SARIF's own suppressions: an accepted one (the default status) hides the result. */
function suppressedIn(result: Json, walk: Walk): boolean {
  for (const suppression of walk.objects(result.suppressions)) {
    const status = text(suppression.status);
    if (status === "" || status === "accepted") return true;
  }
  return false;
}

/** The value of a "Name: value" line of a message. */
function line(message: string, name: string): string {
  if (!message) return "";
  const at = message.indexOf(`${name}: `);
  if (at < 0 || (at > 0 && message[at - 1] !== "\n")) return "";
  return message.slice(at + name.length + 2).split("\n")[0]!.trim();
}
