import { Hono, type Context } from "hono";
import { actorOf } from "../audit/events";
import { parseAuditQuery, readAuditLog } from "../audit/log";
import { auditsRefusals, recordLogin } from "../audit/requests";
import { scopedAccess } from "../auth/access";
import { authenticatePassword } from "../auth/middleware";
import { purgeEdgeCache } from "../cache/edge";
import { ConfigError } from "../config";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { mirrorFor } from "../mirror/config";
import { readOnly } from "../mirror/manifests";
import { isTag, parseDigest, parseRepositoryName, parseTag } from "../references";
import { readForm } from "../routes/bodies";
import { describeManifest } from "../search/details";
import { normalizeQuery, SearchService } from "../search/search";
import { notify } from "../webhooks/emit";
import { AuditPage } from "./audit";
import { HomePage } from "./home";
import { ErrorPage, page } from "./layout";
import { LoginPage } from "./login";
import { DeleteTagPage, ManifestPage } from "./manifest";
import { RepositoryPage } from "./repository";
import { endSession, isAdmin, sameOrigin, startSession, visitor } from "./session";

const REPOSITORIES_PER_PAGE = 30;
const TAGS_PER_PAGE = 50;

const host = (c: Context<AppEnv>) => new URL(c.req.url).host;

/** What the visitor may not pull is answered as absent, never as forbidden: names of private repositories stay private. */
function pullable(c: Context<AppEnv>): string {
  const repository = parseRepositoryName(c.req.param("name") ?? "");
  if (!c.var.access.allows(repository, "pull")) throw new RegistryError("NAME_UNKNOWN", { repository });
  return repository;
}

/** Whether to offer deleting tags: allowed, not a mirror, not immutable (the delete itself checks again). */
function deletable(c: Context<AppEnv>, repository: string): boolean {
  const { config } = c.var.registry;
  return (
    c.var.access.allows(repository, "delete") &&
    mirrorFor(config.MIRRORS, repository) === null &&
    !c.var.registry.manifests.isImmutable(repository)
  );
}

function requireDelete(c: Context<AppEnv>, repository: string): void {
  if (mirrorFor(c.var.registry.config.MIRRORS, repository)) throw readOnly();
  if (!c.var.access.allows(repository, "delete")) {
    throw new RegistryError("DENIED", { repository }, { message: `You may not delete tags of ${repository}.` });
  }
}

/** A refused tag delete in the web UI, for the audit log (its path is valid, or it would not have got that far). */
function uiTagDelete(c: Context<AppEnv>) {
  try {
    return { action: "tag.delete", repository: parseRepositoryName(c.req.param("name") ?? ""), target: parseTag(c.req.param("tag") ?? ""), detail: { place: "web" } } as const;
  } catch {
    return null;
  }
}

/** Where to go after logging in: a path of this site only. */
function safeNext(next: unknown): string {
  // Printable ASCII only: browsers drop tabs and newlines, which would turn "/\t/host" into "//host".
  return typeof next === "string" && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : "/";
}

// The web UI (README: "Web UI and search"): server-rendered pages over the same services and access rules as the API.
// Middleware is attached per route: `use("*")` here would run for every path of the Worker once mounted at "/".
export const ui = new Hono<AppEnv>()
  .get("/", visitor, async (c) => {
    const query = normalizeQuery(c.req.query("q"));
    const results = await new SearchService(c.var.registry.db).repositories(query, c.var.access.pullPatterns, c.req.query("cursor"), REPOSITORIES_PER_PAGE);
    return page(
      c,
      { title: query ? `“${query}”` : "Repositories", query },
      <HomePage query={query} results={results} publicOnly={c.var.access.via === "none"} />,
    );
  })
  .get("/login", visitor, (c) =>
    page(c, { title: "Log in" }, <LoginPage next={safeNext(c.req.query("next"))} error={null} open={c.var.registry.config.AUTH_MODE === "open"} />),
  )
  .post("/login", visitor, sameOrigin, async (c) => {
    const form = await readForm(c);
    const next = safeNext(form.get("next"));
    if (c.var.registry.config.AUTH_MODE === "open") return c.redirect(next, 303);
    const token = form.get("token")?.trim() ?? "";
    // Checked like a password on the registry API: same verification, same failure counting and limit.
    const password = /^[\x21-\x7e]{1,512}$/.test(token) ? token : "invalid";
    try {
      const credential = await authenticatePassword(c, "web", password);
      await startSession(c, credential, password);
      await recordLogin(c, credential.actor);
    } catch (error) {
      if (!(error instanceof RegistryError) || (error.code !== "UNAUTHORIZED" && error.code !== "TOOMANYREQUESTS")) throw error;
      const retryAfter = error.headers["Retry-After"];
      if (retryAfter) c.header("Retry-After", retryAfter);
      const message = error.code === "UNAUTHORIZED" ? "That access token is not valid (wrong, expired or revoked)." : "Too many failed attempts: wait a minute.";
      return page(c, { title: "Log in", status: error.code === "UNAUTHORIZED" ? 401 : 429 }, <LoginPage next={next} error={message} open={false} />);
    }
    return c.redirect(next, 303);
  })
  .post("/logout", visitor, sameOrigin, async (c) => {
    // The form carries nothing, but its body is held to the limit all the same.
    await readForm(c);
    endSession(c);
    return c.redirect("/", 303);
  })
  .get("/r/:name{.+}/-/tags/:tag/delete", visitor, async (c) => {
    const repository = pullable(c);
    const tag = parseTag(c.req.param("tag"));
    requireDelete(c, repository);
    const found = await new SearchService(c.var.registry.db).tag(repository, tag);
    if (!found) throw new RegistryError("MANIFEST_UNKNOWN", { repository, tag });
    return page(c, { title: `Delete ${repository}:${tag}` }, <DeleteTagPage repository={repository} tag={tag} digest={found.digest} />);
  })
  .post("/r/:name{.+}/-/tags/:tag/delete", visitor, sameOrigin, auditsRefusals(uiTagDelete), async (c) => {
    // The form carries nothing, but its body is held to the limit all the same.
    await readForm(c);
    const repository = pullable(c);
    const tag = parseTag(c.req.param("tag"));
    requireDelete(c, repository);
    // The API's own semantics: the tag only, and an immutable tag is refused (IMMUTABLE_TAGS).
    await c.var.registry.manifests.delete(repository, { tag }, actorOf(c));
    // A delete event, as the API's DELETE of the tag sends one.
    notify(c, { action: "delete", repository, tag });
    await purgeEdgeCache(repository, "manifests", tag);
    return c.redirect(`/r/${repository}?${new URLSearchParams({ deleted: tag })}`, 303);
  })
  .get("/r/:name{.+}/-/tags/:tag", visitor, async (c) => {
    const repository = pullable(c);
    const details = await describeManifest(c.var.registry, repository, parseTag(c.req.param("tag")));
    return page(c, { title: `${repository}:${details.tag}` }, <ManifestPage details={details} host={host(c)} canDelete={deletable(c, repository)} />);
  })
  .get("/r/:name{.+}/-/manifests/:digest", visitor, async (c) => {
    const repository = pullable(c);
    const details = await describeManifest(c.var.registry, repository, parseDigest(c.req.param("digest")).digest);
    return page(c, { title: `${repository}@${details.digest.slice(0, 19)}` }, <ManifestPage details={details} host={host(c)} canDelete={false} />);
  })
  .get("/r/:name{.+}", visitor, async (c) => {
    const repository = pullable(c);
    const search = new SearchService(c.var.registry.db);
    const found = await search.repository(repository);
    if (!found) throw new RegistryError("NAME_UNKNOWN", { repository });
    const cursor = c.req.query("cursor") ?? null;
    const order = c.req.query("sort") === "pulled" ? "pulled" : "pushed";
    const tags = await search.tags(repository, cursor ?? undefined, TAGS_PER_PAGE, order);
    const signatures = await c.var.registry.signatures.verdicts(repository, tags.items.map((tag) => tag.digest));
    const vulnerabilities = await c.var.registry.vulnerabilities.summaries(repository, tags.items.map((tag) => tag.digest));
    // Said only when true: a link cannot make the page claim that an existing tag was deleted.
    const deleted = c.req.query("deleted");
    const confirmed = deleted !== undefined && isTag(deleted) && !(await search.tag(repository, deleted)) ? deleted : null;
    return page(
      c,
      { title: repository },
      <RepositoryPage repository={found} tags={tags} signatures={signatures} vulnerabilities={vulnerabilities} order={order} host={host(c)} deleted={confirmed} cursor={cursor} />,
    );
  })
  // The audit log, for the admin (logged in with the admin token) only: anyone else is told there is no such page.
  .get("/audit", visitor, async (c) => {
    if (!isAdmin(c.var.access)) throw new RegistryError("NOT_FOUND", null, { message: "no such page" });
    const raw = (name: string) => c.req.query(name)?.slice(0, 300) ?? "";
    const filters = { action: raw("action"), repository: raw("repository"), actor: raw("actor"), since: raw("since"), until: raw("until"), limit: raw("limit") };
    let query;
    try {
      query = parseAuditQuery((name) => c.req.query(name));
    } catch (error) {
      if (!(error instanceof RegistryError) || error.status !== 400) throw error;
      const message = `Check the filters: ${((error.detail ?? []) as { parameter: string; message: string }[]).map((issue) => `${issue.parameter}: ${issue.message}`).join("; ") || error.message}`;
      return page(c, { title: "Audit log", status: 400 }, <AuditPage filters={filters} events={[]} next={null} error={message} paged={false} />);
    }
    const { events, next } = await readAuditLog(c.var.registry.db.current, query);
    return page(c, { title: "Audit log" }, <AuditPage filters={filters} events={events} next={next} error={null} paged={query.cursor !== undefined} />);
  })
  .onError((error, c) => {
    // An error before the visitor was known (a bad configuration) still gets a page, as an anonymous one.
    if (!c.var.access) c.set("access", scopedAccess("anonymous", "none", []));
    const { status, title, message } = describeError(error);
    const loginHint = status === 404 && c.var.access.via === "none";
    return page(c, { title, status }, <ErrorPage title={title} message={message} loginHint={loginHint} path={c.req.path} />);
  });

const NOT_FOUND = new Set(["NOT_FOUND", "NAME_UNKNOWN", "NAME_INVALID", "MANIFEST_UNKNOWN", "TAG_INVALID", "DIGEST_INVALID", "BLOB_UNKNOWN"]);

function describeError(error: Error): { status: 400 | 403 | 404 | 413 | 429 | 500; title: string; message: string } {
  if (error instanceof RegistryError) {
    if (NOT_FOUND.has(error.code)) return { status: 404, title: "Not found", message: "There is no such repository, tag or manifest, or you may not see it." };
    if (error.code === "DENIED" || error.code === "UNAUTHORIZED") return { status: 403, title: "Not allowed", message: error.message };
    if (error.code === "TOOMANYREQUESTS") return { status: 429, title: "Too many requests", message: error.message };
    if (error.status === 400) return { status: 400, title: "Bad request", message: error.message };
    if (error.code === "REQUEST_TOO_LARGE") return { status: 413, title: "Too large", message: error.message };
  }
  if (error instanceof ConfigError) console.error(error.message);
  else console.error("web UI error", error);
  return { status: 500, title: "Something went wrong", message: "The registry could not show this page. Try again, or look at the Worker's logs." };
}
