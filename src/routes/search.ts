import { Hono, type Context } from "hono";
import { requires } from "../auth/middleware";
import type { AppEnv } from "../context";
import { IMAGE_CONFIG_MEDIA_TYPES } from "../search/image-config";
import { keeps, parseTagFilter, tagFilterParams } from "../search/filters";
import { normalizeQuery, SearchService } from "../search/search";
import { pullStats } from "../services/pulls";
import type { PullStats } from "../storage/pull-records";
import type { VulnerabilityState } from "../vulnerabilities/reports";
import { NOT_SCANNED } from "../vulnerabilities/store";
import { parsePage } from "./pagination";
import { parsePath, pathOf } from "./path";

/** A tag's or manifest's pull statistics as the API gives them: never pulled is 0 and null. */
function pullsOf(stats: PullStats | undefined): { pulls: number; lastPulledAt: string | null } {
  return { pulls: stats?.pulls ?? 0, lastPulledAt: stats ? iso(stats.lastPulledAt) : null };
}

/** A tag's vulnerability summary as the API gives it; `pending` while attached reports are still to be read. */
function vulnerabilitiesOf(state: VulnerabilityState | undefined) {
  const { critical, high, medium, low, unknown, fixable, suppressed, scanned, scannedAt, pending, reports } = state ?? {
    ...NOT_SCANNED,
    pending: false,
    reports: 0,
  };
  return { critical, high, medium, low, unknown, fixable, suppressed, scanned, scannedAt: scannedAt === null ? null : iso(scannedAt), pending, reports };
}

// Pages are small: every item carries a few rows' worth of facts.
const DEFAULT_PAGE = 25;
const MAX_PAGE = 100;

function pageSize(c: Context<AppEnv>): number {
  if (c.req.query("n") === undefined) return DEFAULT_PAGE;
  return Math.min(parsePage((name) => c.req.query(name)).limit, MAX_PAGE);
}

/** The Link header to the next page: the same request with the cursor moved on. */
function linkNext(c: Context<AppEnv>, path: string, params: Record<string, string>, next: string | null): void {
  if (next === null) return;
  c.header("Link", `<${path}?${new URLSearchParams({ ...params, cursor: next })}>; rel="next"`);
}

const iso = (millis: number) => new Date(millis).toISOString();

// Browsing API (README: "Web UI and search"): what the web UI shows, as JSON, for the same callers.
export const search = new Hono<AppEnv>()
  .get("/api/search", async (c) => {
    const query = normalizeQuery(c.req.query("q"));
    const limit = pageSize(c);
    // ?signed=true|false&critical=true|false, of each repository's latest tag (src/search/filters.ts).
    const filter = parseTagFilter((name) => c.req.query(name));
    const page = await new SearchService(c.var.registry.db).repositories(query, c.var.access.pullPatterns, c.req.query("cursor"), limit, filter);
    linkNext(c, "/api/search", { q: query, n: String(limit), ...tagFilterParams(filter) }, page.next);
    return c.json({
      query,
      repositories: page.items.map((hit) => ({
        name: hit.name,
        match: hit.match,
        description: hit.description,
        tags: hit.tagCount,
        latest: hit.latest && { tag: hit.latest.tag, digest: hit.latest.digest, pushedAt: iso(hit.latest.pushedAt) },
      })),
    });
  })
  .get("/api/repositories/:name{.+}/tags", parsePath(), requires("pull"), async (c) => {
    const { repository } = pathOf(c);
    const limit = pageSize(c);
    // ?signed=true|false&critical=true|false (src/search/filters.ts).
    const filter = parseTagFilter((name) => c.req.query(name));
    const page = await new SearchService(c.var.registry.db).tags(repository, c.req.query("cursor"), limit, "pushed", filter);
    linkNext(c, `/api/repositories/${repository}/tags`, { n: String(limit), ...tagFilterParams(filter) }, page.next);
    const pulls = await pullStats(c.env.DB, repository, page.items);
    const signatures = await c.var.registry.signatures.verdicts(repository, page.items.map((tag) => tag.digest));
    const vulnerabilities = await c.var.registry.vulnerabilities.summaries(repository, page.items.map((tag) => tag.digest));
    return c.json({
      name: repository,
      tags: page.items.filter((tag) => keeps(filter, signatures.get(tag.digest), vulnerabilities.get(tag.digest))).map((tag) => ({
        name: tag.name,
        digest: tag.digest,
        mediaType: tag.mediaType,
        // An image's row names its config's media type there; only artifacts have an artifactType.
        artifactType: tag.artifactType !== null && IMAGE_CONFIG_MEDIA_TYPES.has(tag.artifactType) ? null : tag.artifactType,
        pushedAt: iso(tag.pushedAt),
        size: tag.size,
        platforms: tag.platforms,
        referrers: tag.referrers,
        ...pullsOf(pulls.tags.get(tag.name)),
        manifestPulls: pullsOf(pulls.manifests.get(tag.digest)),
        // verified (signers), invalid (problems), pending or unsigned: see src/signatures/verdicts.ts.
        signature: signatures.get(tag.digest) ?? { status: "unsigned" },
        // Counts over every source of findings (attached reports, SBOM scans): see src/vulnerabilities/.
        vulnerabilities: vulnerabilitiesOf(vulnerabilities.get(tag.digest)),
      })),
    });
  });
