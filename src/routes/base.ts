import { Hono } from "hono";
import type { AppEnv } from "../context";

// OCI dist-spec end-1: the API version check.
export const base = new Hono<AppEnv>().get("/v2/", (c) => c.json({}));
