// Which report format a media type or artifact type names, and its parser.
import { parseCycloneDx } from "./cyclonedx";
import { parseOpenVex } from "./openvex";
import type { ParsedReport, Walk } from "./report-json";
import { parseSarif } from "./sarif";
import { parseTrivy } from "./trivy";

export const REPORT_FORMATS = ["trivy", "sarif", "cyclonedx", "openvex"] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/**
 * application/vnd.aquasec.trivy.report+json (or any type naming trivy), application/sarif+json,
 * application/vnd.cyclonedx+json, application/vnd.openvex+json; the order matters (a CycloneDX VEX is CycloneDX).
 */
export function formatOf(mediaType: string | null | undefined): ReportFormat | null {
  const type = (mediaType ?? "").toLowerCase();
  if (type.includes("trivy")) return "trivy";
  if (type.includes("sarif")) return "sarif";
  if (type.includes("cyclonedx")) return "cyclonedx";
  if (type.includes("vex")) return "openvex";
  return null;
}

export function parseReport(format: ReportFormat, document: unknown, report: string, subject: string, walk: Walk): ParsedReport {
  switch (format) {
    case "trivy":
      return parseTrivy(document, report, walk);
    case "sarif":
      return parseSarif(document, report, walk);
    case "cyclonedx":
      return parseCycloneDx(document, report, walk);
    case "openvex":
      return parseOpenVex(document, report, subject, walk);
  }
}
