// The Worker of the cost project (vitest.config.ts, project "cost"): the registry itself, with its Durable Object
// classes given counting storage and counting bindings, so that what an upload session or a mirror fetch lease
// reads and writes is counted with the request that caused it. The classes keep their names (wrangler.toml binds
// them by name); nothing else differs from src/index.ts.
import type { Env } from "../../src/config";
import registry from "../../src/index";
import { MirrorBlobFetch as RegistryMirrorBlobFetch } from "../../src/mirror/blob-fetch";
import { UploadSession as RegistryUploadSession } from "../../src/uploads/upload-session";
import { countedEnv, countedState } from "./meter";

// The base class takes only the runtime's own state object: the counting one is put in its place afterwards.
const counting = (object: { ctx: DurableObjectState }, ctx: DurableObjectState) =>
  Object.defineProperty(object, "ctx", { value: countedState(ctx), configurable: true });

export class UploadSession extends RegistryUploadSession {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countedEnv(env));
    counting(this as unknown as { ctx: DurableObjectState }, ctx);
  }
}

export class MirrorBlobFetch extends RegistryMirrorBlobFetch {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countedEnv(env));
    counting(this as unknown as { ctx: DurableObjectState }, ctx);
  }
}

export default registry;
