// The admin API's OSV endpoints (src/routes/admin.ts): an import's body read as what it is (an export zip, streamed;
// JSON, read whole within MAX_JSON_IMPORT_BYTES), and the database's status.
import { z } from "zod";
import { RegistryError } from "../errors";
import type { Database } from "../storage/database";
import { OsvRecords } from "../storage/osv-records";
import { drain, readAtMost } from "../streams";
import type { OsvFeed } from "./config";
import { importJson, importZip, ZipInvalid, type ImportReport } from "./import";
import { MAX_JSON_IMPORT_BYTES } from "./jobs";

/** Records one import request reads (the CLI sends pieces well under it; a zip reports `next` to resume from). */
export const MAX_RECORDS_PER_REQUEST = 5000;
/** Time one import request spends before it stops and reports where to resume. */
const IMPORT_SECONDS = 20;

export const ImportQuery = z.object({
  ecosystem: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9 .:-]{0,63}$/, "an OSV ecosystem name (npm, PyPI, Go, Debian, Alpine, …)")
    .optional(),
  skip: z.coerce.number({ message: "must be a number of zip entries" }).int().min(0).max(10_000_000).default(0),
});
export type ImportQuery = z.infer<typeof ImportQuery>;

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

export async function importRequest(db: Database, request: Request, query: ImportQuery): Promise<ImportReport> {
  if (!request.body) throw new RegistryError("REQUEST_INVALID", null, { message: "no body: send an OSV record, a JSON array of them, or an OSV export zip" });
  const type = (request.headers.get("Content-Type") ?? "").toLowerCase();
  const [head, body] = await peek(request.body, 4);
  const zip = type.includes("zip") || ZIP_MAGIC.every((byte, index) => head[index] === byte);
  if (zip) {
    try {
      return await importZip(db, body, query.ecosystem ?? null, query.skip, { maxRecords: MAX_RECORDS_PER_REQUEST, deadline: Date.now() + IMPORT_SECONDS * 1000 });
    } catch (error) {
      if (error instanceof ZipInvalid) {
        await drain(body);
        throw new RegistryError("REQUEST_INVALID", null, { message: error.message });
      }
      throw error;
    }
  }
  const declared = request.headers.get("Content-Length");
  if (declared !== null && !(Number(declared) <= MAX_JSON_IMPORT_BYTES)) {
    await drain(body);
    throw tooLarge();
  }
  const bytes = await readAtMost(body, MAX_JSON_IMPORT_BYTES);
  if (!bytes) throw tooLarge();
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new RegistryError("REQUEST_INVALID", null, { message: "the body is neither JSON nor a zip archive" });
  }
  if (Array.isArray(value) && value.length > MAX_RECORDS_PER_REQUEST) {
    throw new RegistryError("REQUEST_TOO_LARGE", { limit: MAX_RECORDS_PER_REQUEST }, { message: `at most ${MAX_RECORDS_PER_REQUEST} records per request` });
  }
  if (!Array.isArray(value) && (typeof value !== "object" || value === null)) {
    throw new RegistryError("REQUEST_INVALID", null, { message: "the body is neither an OSV record nor an array of them" });
  }
  return importJson(db, value, query.ecosystem ?? null);
}

function tooLarge(): RegistryError {
  return new RegistryError("REQUEST_TOO_LARGE", { limit: MAX_JSON_IMPORT_BYTES }, {
    message: `a JSON import is at most ${MAX_JSON_IMPORT_BYTES} bytes: send an array in pieces (the CLI's osv-import does), or the export zip`,
  });
}

/** The stream's first `count` bytes, and a stream of all of it (those bytes included). */
async function peek(stream: ReadableStream<Uint8Array>, count: number): Promise<[Uint8Array, ReadableStream<Uint8Array>]> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (size < count) {
    const next = await reader.read();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(next.value);
    size += next.value.byteLength;
  }
  const head = new Uint8Array(Math.min(size, count));
  let at = 0;
  for (const chunk of chunks) {
    if (at >= head.length) break;
    head.set(chunk.subarray(0, head.length - at), at);
    at += Math.min(chunk.byteLength, head.length - at);
  }
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      if (done) controller.close();
    },
    async pull(controller) {
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return [head, rest];
}

export async function osvStatus(db: Database, feeds: readonly OsvFeed[]) {
  const records = new OsvRecords(db);
  return {
    database: await records.counts(),
    feeds: await Promise.all(feeds.map(async (feed) => ({ ...feed, state: await records.feed(feed.url) }))),
  };
}
