import { Hono } from "hono";
import { requires } from "../auth/middleware";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { parsePath, pathOf } from "./path";
import { nextLink, parsePage } from "./pagination";

// OCI dist-spec end-8a/8b: tags in lexical order, paginated with n and last.
export const tags = new Hono<AppEnv>().get("/:name{.+}/tags/list", parsePath(), requires("pull"), mirrored, async (c) => {
  const { repository } = pathOf(c);
  const page = parsePage((name) => c.req.query(name));
  const found = await c.var.registry.manifests.tags(repository, page.limit + 1, page.last);
  const list = found.slice(0, page.limit);
  const link = nextLink(`/v2/${repository}/tags/list`, page, list, found.length > page.limit);
  if (link) c.header("Link", link);
  return c.json({ name: repository, tags: list });
});
