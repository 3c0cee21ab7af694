import { Hono } from "hono";
import { challenge } from "../auth/middleware";
import type { AppEnv } from "../context";
import { nextLink, parsePage } from "./pagination";

// A caller that sent no credentials is challenged, so that clients which authenticate only when asked (oras) send
// theirs; an anonymous bearer token still lists what is public.
export const catalog = new Hono<AppEnv>().get("/_catalog", async (c) => {
  if (c.var.access.via === "none") throw challenge(c, "catalog");
  const page = parsePage((name) => c.req.query(name));
  const found = await c.var.registry.manifests.repositories(page.limit + 1, page.last, c.var.access.pullPatterns);
  const repositories = found.slice(0, page.limit);
  const link = nextLink("/v2/_catalog", page, repositories, found.length > page.limit);
  if (link) c.header("Link", link);
  return c.json({ repositories });
});
