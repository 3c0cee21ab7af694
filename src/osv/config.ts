import { z } from "zod";
import { jsonList } from "../json-setting";

// OSV_FEEDS: OSV exports the cron keeps the database current from (README: "SBOM scanning"), a JSON list:
//   [{"ecosystem": "npm", "url": "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip"}]
// Each cron run imports a bounded number of records from them (OSV_FEED_RECORDS_PER_RUN), resuming where it stopped.

export const OsvFeed = z.strictObject({
  /** The records must affect packages of this ecosystem ("npm", "PyPI", "Debian", "Alpine", …): a wrong URL is caught. */
  ecosystem: z.string().regex(/^[A-Za-z][A-Za-z0-9 .:-]{0,63}$/, "an OSV ecosystem name (npm, PyPI, Go, Debian, Alpine, …)"),
  url: z.url({ protocol: /^https$/, message: "must be an https URL (an OSV export: …/<Ecosystem>/all.zip)" }),
});
export type OsvFeed = z.infer<typeof OsvFeed>;

export const OsvFeeds = jsonList(OsvFeed)
  .refine((feeds) => new Set(feeds.map((feed) => feed.url)).size === feeds.length, "two feeds have the same url")
  .refine((feeds) => feeds.length <= 50, "at most 50 feeds");
