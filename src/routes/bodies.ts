import type { Context } from "hono";
import { RegistryError } from "../errors";
import { readAtMost } from "../streams";

// The forms and JSON documents some endpoints take (POST /token, the web UI's forms, the admin API) are small: their
// bodies are read up to SMALL_BODY_BYTES and no further before anything parses them, whoever sends them. A larger
// one, declared or not, is refused with 413 and never buffered.
export const SMALL_BODY_BYTES = 64 * 1024;

/** The text fields of a form (urlencoded or multipart); a body of another type has none. */
export async function readForm(c: Context): Promise<URLSearchParams> {
  const bytes = await readSmallBody(c.req.raw);
  const type = c.req.header("Content-Type") ?? "";
  if (/^application\/x-www-form-urlencoded\b/i.test(type)) return new URLSearchParams(new TextDecoder().decode(bytes));
  if (!/^multipart\/form-data\b/i.test(type)) return new URLSearchParams();
  const form = await new Response(bytes, { headers: { "Content-Type": type } }).formData().catch(() => {
    throw new RegistryError("REQUEST_INVALID", null, { message: "the form is malformed" });
  });
  const fields = new URLSearchParams();
  for (const [name, value] of form) if (typeof value === "string") fields.append(name, value);
  return fields;
}

/** A JSON body, parsed (400 when it is not JSON). */
export async function readJson(c: Context): Promise<unknown> {
  const text = new TextDecoder().decode(await readSmallBody(c.req.raw));
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RegistryError("REQUEST_INVALID", null, { message: "the body is not JSON" });
  }
}

async function readSmallBody(request: Request): Promise<Uint8Array> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && !(Number(declared) <= SMALL_BODY_BYTES)) throw tooLarge();
  if (!request.body) return new Uint8Array();
  const bytes = await readAtMost(request.body, SMALL_BODY_BYTES);
  if (!bytes) throw tooLarge();
  return bytes;
}

function tooLarge(): RegistryError {
  return new RegistryError("REQUEST_TOO_LARGE", { limit: SMALL_BODY_BYTES }, { message: `the body is larger than ${SMALL_BODY_BYTES} bytes` });
}
