import { Hono } from "hono";
import { requiresIdentity } from "../auth/middleware";
import type { AppEnv } from "../context";

// OCI dist-spec end-1: the API version check.
export const base = new Hono<AppEnv>().get("/v2/", requiresIdentity, (c) => c.json({}));
