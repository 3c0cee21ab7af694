import type { Waiter } from "../cache/edge";
import type { Env } from "../config";
import { digestOf } from "../digest";
import { ImageManifest, type Descriptor } from "../manifests/schema";
import type { RequestDatabase } from "../storage/database";
import { VulnerabilityRecords, type ReportInputs, type ReportReferrer } from "../storage/vulnerability-records";
import { formatOf, parseReport, type ReportFormat } from "./formats";
import { ReportError, shapeProblem, Walk, type ParsedReport, type Statement } from "./report-json";
import {
  MAX_FINDINGS_PER_SOURCE,
  NOT_SCANNED,
  replaceFindings,
  type Finding,
  type ScanProblem,
  type StoredFinding,
  type StoredScan,
  type Suppression,
  type VulnerabilitySummary,
} from "./store";

// Vulnerability reports attached as referrers (Trivy, SARIF, CycloneDX, OpenVEX): read in the background after a
// report is pushed, and again by any reader that finds the stored result stale (the manifest's reports are not the
// ones it was computed from), as signature verdicts are (src/signatures/verdicts.ts). The findings go to the store
// under the source "reports", beside those of other sources; the summary a reader gets counts them all.

/** The findings source of attached reports. */
export const REPORTS_SOURCE = "reports";
/** Report referrers read per manifest (the newest): what one can push costs every reader at most this. */
export const MAX_REPORTS = 8;
/** Bytes read of one report; a larger one is recorded as unreadable. */
export const MAX_REPORT_BYTES = 8 * 1024 * 1024;
/** Findings shown on a manifest's page. */
export const FINDINGS_SHOWN = 500;
/** Summaries a listing computes in the request (each may read several MiB); the rest after the response. */
const COMPUTED_PER_LISTING = 1;
const COMPUTED_AFTER_LISTING = 4;
/** Part of the fingerprint: a change to what the parsers read makes every stored result stale. */
const PARSERS_VERSION = "1";

const EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json";
const NO_WAITER: Waiter = { waitUntil: () => undefined };

/** A manifest's summary as a reader sees it: `pending` while attached reports have not been read yet. */
export interface VulnerabilityState extends VulnerabilitySummary {
  pending: boolean;
  /** Report referrers attached (at most MAX_REPORTS counted). */
  reports: number;
}

/** What a manifest's page shows. */
export interface VulnerabilityDetails {
  state: VulnerabilityState;
  findings: StoredFinding[];
  /** Findings stored beyond those shown. */
  more: boolean;
  scans: StoredScan[];
  reports: { digest: string; format: ReportFormat | null }[];
}

export class VulnerabilityService {
  constructor(
    private readonly env: Env,
    private readonly db: RequestDatabase,
    private readonly ctx: Waiter = NO_WAITER,
  ) {}

  private get records(): VulnerabilityRecords {
    return new VulnerabilityRecords(this.db.current);
  }

  /** One manifest's summary, computed now if stale (what a pull policy reads). */
  async summary(repository: string, digest: string): Promise<VulnerabilityState> {
    return (await this.summaries(repository, [digest], 1)).get(digest)!;
  }

  /**
   * Summaries of a page of manifests: current ones as stored, at most `compute` stale ones computed now, the others
   * pending (their stored summary, if any, flagged) and computed after the response, a bounded number.
   */
  async summaries(repository: string, digests: string[], compute = COMPUTED_PER_LISTING): Promise<Map<string, VulnerabilityState>> {
    const rows = await this.records.reportInputs(repository, digests, MAX_REPORTS);
    const states = new Map<string, VulnerabilityState>();
    const later: ReportInputs[] = [];
    for (const row of rows) {
      const current = row.reports.length === 0 ? row.inputs === null || row.inputs === fingerprint([]) : row.inputs === fingerprint(row.reports);
      if (current) states.set(row.digest, { ...(row.summary ?? NOT_SCANNED), pending: false, reports: row.reports.length });
      else if (compute-- > 0) states.set(row.digest, await this.compute(repository, row));
      else {
        states.set(row.digest, { ...(row.summary ?? NOT_SCANNED), pending: true, reports: row.reports.length });
        later.push(row);
      }
    }
    if (later.length > 0) {
      this.ctx.waitUntil(
        (async () => {
          for (const row of later.slice(0, COMPUTED_AFTER_LISTING)) await this.compute(repository, row);
        })().catch((error) => console.error(JSON.stringify({ event: "vulnerability-reports-failed", repository, error: String(error) }))),
      );
    }
    return states;
  }

  /** After a push of a referrer: when it is a report, its subject's findings, after the response. */
  afterPush(repository: string, subject: string | null): void {
    if (!subject) return;
    this.ctx.waitUntil(
      this.summary(repository, subject).catch((error) =>
        console.error(JSON.stringify({ event: "vulnerability-reports-failed", repository, digest: subject, error: String(error) })),
      ),
    );
  }

  /** A manifest's summary (computed now if stale), its findings worst first, and what each source recorded. */
  async details(repository: string, digest: string): Promise<VulnerabilityDetails> {
    const state = await this.summary(repository, digest);
    const [findings, scans, rows] = await Promise.all([
      this.records.findings(repository, digest, FINDINGS_SHOWN + 1),
      this.records.scans(repository, digest),
      this.records.reportInputs(repository, [digest], MAX_REPORTS),
    ]);
    const reports = (rows[0]?.reports ?? []).map((report) => ({ digest: report.digest, format: formatOf(report.artifactType) }));
    return { state, findings: findings.slice(0, FINDINGS_SHOWN), more: findings.length > FINDINGS_SHOWN, scans, reports };
  }

  private async compute(repository: string, row: ReportInputs): Promise<VulnerabilityState> {
    const findings: Finding[] = [];
    const statements: Statement[] = [];
    const problems: ScanProblem[] = [];
    const seen = new Set<string>();
    let scanned = false;
    let dropped = 0;
    for (const report of row.reports) {
      let parsed: ParsedReport;
      try {
        parsed = await this.read(repository, report, row.digest);
      } catch (error) {
        if (!(error instanceof ReportError)) throw error;
        problems.push({ report: report.digest, reason: error.message });
        continue;
      }
      scanned ||= parsed.scan;
      for (const finding of parsed.findings) {
        const key = `${finding.report}\n${finding.id}\n${finding.package}\n${finding.installed}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (findings.length < MAX_FINDINGS_PER_SOURCE) findings.push(finding);
        else dropped++;
      }
      statements.push(...parsed.statements);
    }
    await replaceFindings(this.db.current, repository, row.digest, REPORTS_SOURCE, findings, {
      inputs: fingerprint(row.reports),
      scanned,
      problems,
      suppressions: suppressionsOf(statements),
      dropped,
    });
    const summary = (await this.records.summaries(repository, [row.digest])).get(row.digest) ?? NOT_SCANNED;
    return { ...summary, pending: false, reports: row.reports.length };
  }

  /** One report, parsed: a ReportError says why it could not be (too large, not JSON, not what its type says). */
  private async read(repository: string, report: ReportReferrer, subject: string): Promise<ParsedReport> {
    const text = await this.records.manifestText(repository, report.digest);
    const parsed = text === null ? null : ImageManifest.safeParse(safeJson(text));
    if (!parsed?.success) throw new ReportError("the report's manifest could not be read (not an image manifest, or too large)");
    const { layer, format } = reportLayer(parsed.data.layers, formatOf(report.artifactType));
    if (!layer || !format) throw new ReportError("the report's manifest has no report layer");
    if (/\+xml\b|\/xml\b/i.test(layer.mediaType)) throw new ReportError("XML reports are not read (attach the JSON form)");
    if (layer.size > MAX_REPORT_BYTES) throw new ReportError(`the report is larger than ${MAX_REPORT_BYTES} bytes`);
    const bytes = await this.records.blobBytes(this.env.BLOBS, repository, layer.digest, MAX_REPORT_BYTES);
    if (bytes === "missing") throw new ReportError("the report's blob is not stored in this repository");
    if (bytes === "too large") throw new ReportError(`the report is larger than ${MAX_REPORT_BYTES} bytes`);
    if ((await digestOf(bytes, layer.digest.startsWith("sha512:") ? "sha512" : "sha256")) !== layer.digest) {
      throw new ReportError("the report's bytes do not match its digest");
    }
    const shape = shapeProblem(bytes);
    if (shape) throw new ReportError(shape);
    let document: unknown;
    try {
      document = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
    } catch {
      throw new ReportError("the report is not JSON");
    }
    return parseReport(format, document, report.digest, subject, new Walk());
  }
}

/** The layer holding the report: the first whose media type names a format, else the artifact's first non-empty one. */
function reportLayer(layers: Descriptor[], artifactFormat: ReportFormat | null): { layer: Descriptor | null; format: ReportFormat | null } {
  for (const layer of layers) {
    const format = formatOf(layer.mediaType);
    if (format) return { layer, format };
  }
  const layer = layers.find((candidate) => candidate.mediaType !== EMPTY_MEDIA_TYPE) ?? null;
  return { layer, format: artifactFormat };
}

/** VEX statements in order: the last about a vulnerability and package decides; those that suppress are kept. */
function suppressionsOf(statements: Statement[]): Suppression[] {
  const last = new Map<string, Statement>();
  for (const statement of statements) {
    const key = `${statement.id.toUpperCase()}\n${statement.package}`;
    last.delete(key);
    last.set(key, statement);
  }
  const suppressions: Suppression[] = [];
  for (const statement of last.values()) {
    if (statement.status === "not_affected" || statement.status === "fixed") suppressions.push({ ...statement, status: statement.status });
  }
  return suppressions;
}

function fingerprint(reports: ReportReferrer[]): string {
  return JSON.stringify([PARSERS_VERSION, reports.map((report) => report.digest)]);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
