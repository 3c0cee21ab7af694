import type { VulnerabilityDetails, VulnerabilityState } from "../vulnerabilities/reports";
import { SEVERITIES, type StoredFinding } from "../vulnerabilities/store";
import { isoTime, shortDigest, timeAgo } from "./format";

const FORMAT_LABELS = { trivy: "Trivy", sarif: "SARIF", cyclonedx: "CycloneDX", openvex: "OpenVEX" } as const;

/** "3 critical, 5 high" (the worst two severities found), or null when nothing unsuppressed was found. */
function worst(state: VulnerabilityState): string | null {
  const parts = SEVERITIES.filter((severity) => state[severity] > 0).map((severity) => `${state[severity]} ${severity}`);
  return parts.length > 0 ? parts.slice(0, 2).join(", ") : null;
}

function tone(state: VulnerabilityState): string {
  if (state.critical > 0 || state.high > 0) return "vuln-bad";
  if (state.medium > 0 || state.low > 0 || state.unknown > 0) return "vuln-some";
  return "vuln-clean";
}

/** A tag row's badge: the worst findings ("3 critical"), "no vulnerabilities", or reports not read yet; nothing unscanned. */
export function VulnerabilityBadge(props: { state: VulnerabilityState | undefined }) {
  const { state } = props;
  if (!state) return null;
  if (!state.scanned) return state.pending ? <span class="badge vuln-pending">scan report not yet read</span> : null;
  const found = worst(state);
  const title = `${SEVERITIES.map((severity) => `${state[severity]} ${severity}`).join(", ")}; ${state.fixable} fixable, ${state.suppressed} suppressed`;
  return (
    <span class={`badge ${tone(state)}`} title={title} data-vulnerabilities={found ?? "none"}>
      {found ?? "no vulnerabilities"}
    </span>
  );
}

/** The tag or manifest page's Vulnerabilities section: counts, then each finding with the report it came from. */
export function VulnerabilitySection(props: { repository: string; details: VulnerabilityDetails }) {
  const { repository, details } = props;
  const { state, findings, scans, reports } = details;
  const problems = scans.flatMap((scan) => scan.problems);
  const dropped = scans.reduce((sum, scan) => sum + scan.dropped, 0);
  const link = (digest: string) => <ReportLink repository={repository} digest={digest} />;
  return (
    <section class="card" id="vulnerabilities" data-scanned={String(state.scanned)}>
      <h2>
        Vulnerabilities {state.scanned && <span class={`badge ${tone(state)}`}>{worst(state) ?? "none found"}</span>}
      </h2>
      {!state.scanned && reports.length === 0 && (
        <p class="muted">Not scanned: no vulnerability report (Trivy, SARIF, CycloneDX) is attached to this manifest.</p>
      )}
      {state.pending && <p class="muted">A report was attached and is not read yet: reload in a moment.</p>}
      {state.scanned && (
        <p class="meta">
          {SEVERITIES.map((severity) => (
            <span data-severity={severity}>
              {state[severity]} {severity}
            </span>
          ))}
          <span data-fixable>{state.fixable} fixable</span>
          <span data-suppressed>{state.suppressed} suppressed</span>
          {state.scannedAt !== null && <span title={isoTime(state.scannedAt)}>scanned {timeAgo(state.scannedAt)}</span>}
        </p>
      )}
      {reports.length > 0 && (
        <p class="meta">
          Reports:{" "}
          {reports.map((report) => (
            <span data-report={report.digest}>
              {report.format ? FORMAT_LABELS[report.format] : "report"} {link(report.digest)}
            </span>
          ))}
        </p>
      )}
      {problems.map((problem) => (
        <p data-problem>
          <span class="badge vuln-bad">unreadable</span> {link(problem.report)} {problem.reason}
        </p>
      ))}
      {findings.length > 0 && (
        <div class="scroll">
          <table id="findings">
            <thead>
              <tr>
                <th>ID</th>
                <th>Package</th>
                <th>Installed</th>
                <th>Fixed</th>
                <th>Severity</th>
                <th>Source</th>
              </tr>
            </thead>
            <tbody>
              {findings.map((finding) => (
                <Finding finding={finding} repository={repository} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(details.more || dropped > 0) && (
        <p class="muted">
          {details.more ? `Only the first ${findings.length} findings are listed. ` : ""}
          {dropped > 0 ? `${dropped} findings past the store's cap were not kept.` : ""}
        </p>
      )}
    </section>
  );
}

function ReportLink(props: { repository: string; digest: string }) {
  return (
    <a href={`/r/${props.repository}/-/manifests/${props.digest}`}>
      <code>{shortDigest(props.digest)}</code>
    </a>
  );
}

function Finding(props: { finding: StoredFinding; repository: string }) {
  const { finding } = props;
  const suppressed = finding.suppressed || finding.vex !== null;
  const why = finding.vex ? `VEX: ${finding.vex.status}${finding.vex.justification ? ` (${finding.vex.justification})` : ""}` : "the report says not affected";
  return (
    <tr data-finding={finding.id} data-suppressed={String(suppressed)}>
      <td class="break">
        <strong>{finding.id}</strong>
        {finding.title && <span class="cmd">{finding.title}</span>}
      </td>
      <td class="break">{finding.package}</td>
      <td class="break">{finding.installed}</td>
      <td class="break">{finding.fixed || <span class="muted">no fix</span>}</td>
      <td class="nowrap">
        <span class={`badge sev-${finding.severity}`}>{finding.severity}</span>
        {suppressed && (
          <span class="badge vuln-suppressed" title={why}>
            suppressed
          </span>
        )}
      </td>
      <td class="nowrap">{finding.report ? <ReportLink repository={props.repository} digest={finding.report} /> : finding.source}</td>
    </tr>
  );
}
