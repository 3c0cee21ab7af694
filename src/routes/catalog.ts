import { Hono } from "hono";
import type { AppEnv } from "../context";
import { nextLink, parsePage } from "./pagination";

export const catalog = new Hono<AppEnv>().get("/_catalog", async (c) => {
  const page = parsePage((name) => c.req.query(name));
  const found = await c.var.registry.manifests.repositories(page.limit + 1, page.last, c.var.access.pullPatterns);
  const repositories = found.slice(0, page.limit);
  const link = nextLink("/v2/_catalog", page, repositories, found.length > page.limit);
  if (link) c.header("Link", link);
  return c.json({ repositories });
});
