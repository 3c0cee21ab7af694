// `edge-oci-registry osv-import SOURCE`: imports OSV records into a registry's vulnerability database (README: "SBOM
// scanning"). SOURCE is an OSV export (a URL, such as https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip,
// or a local .zip), a JSON file of one record or an array of them. The zip is read here, entry by entry, and the
// records POSTed to /admin/osv/import as JSON arrays of at most --piece-bytes, so no request nears the Worker's
// body limit or its per-request import bound.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { Unzip, UnzipInflate } from "fflate";
import { UsageError } from "./push.ts";

export const OSV_IMPORT_USAGE = `usage: edge-oci-registry osv-import [options] SOURCE

SOURCE           an OSV export zip (https://osv-vulnerabilities.storage.googleapis.com/<Ecosystem>/all.zip, or a file),
                 or a JSON file holding an OSV record or an array of them

  --registry URL       the registry (default $REGISTRY_URL or http://127.0.0.1:8787)
  --admin-token TOKEN  the registry's ADMIN_TOKEN (default $REGISTRY_ADMIN_TOKEN)
  --ecosystem NAME     refuse records that affect no package of this ecosystem (npm, PyPI, Go, Debian, Alpine, …)
  --piece-bytes N      the most JSON per request (default 2000000)
`;

const MAX_ENTRY_BYTES = 4 * 1024 * 1024;

interface Totals {
  received: number;
  imported: number;
  unchanged: number;
  rejected: number;
}

export async function osvImport(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      registry: { type: "string", default: process.env.REGISTRY_URL ?? "http://127.0.0.1:8787" },
      "admin-token": { type: "string", default: process.env.REGISTRY_ADMIN_TOKEN },
      ecosystem: { type: "string" },
      "piece-bytes": { type: "string", default: "2000000" },
    },
  });
  const source = positionals[0];
  if (!source || positionals.length > 1) throw new UsageError(OSV_IMPORT_USAGE);
  const token = values["admin-token"];
  if (!token) throw new Error("the admin token is needed: --admin-token or REGISTRY_ADMIN_TOKEN");
  const pieceBytes = Number(values["piece-bytes"]);
  if (!Number.isInteger(pieceBytes) || pieceBytes < 10_000 || pieceBytes > 8_000_000) throw new Error("--piece-bytes must be a whole number from 10000 to 8000000");
  const endpoint = new URL("/admin/osv/import", values.registry);
  if (values.ecosystem) endpoint.searchParams.set("ecosystem", values.ecosystem);
  const totals: Totals = { received: 0, imported: 0, unchanged: 0, rejected: 0 };

  const bytes = await load(source);
  let piece: string[] = [];
  let size = 2;
  const send = async () => {
    if (piece.length === 0) return;
    const body = `[${piece.join(",")}]`;
    piece = [];
    size = 2;
    const response = await fetch(endpoint, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body });
    const text = await response.text();
    if (!response.ok) throw new Error(`the registry answered ${response.status}: ${text.slice(0, 500)}`);
    const report = JSON.parse(text) as Totals & { problems: { id: string | null; reason: string }[] };
    for (const key of ["received", "imported", "unchanged", "rejected"] as const) totals[key] += report[key];
    for (const problem of report.problems) process.stderr.write(`rejected ${problem.id ?? "(no id)"}: ${problem.reason}\n`);
    process.stderr.write(`\r${totals.received} records sent, ${totals.imported} imported, ${totals.unchanged} unchanged, ${totals.rejected} rejected`);
  };
  const add = async (json: string) => {
    if (size + json.length + 1 > pieceBytes) await send();
    piece.push(json);
    size += json.length + 1;
  };

  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    const ready: string[] = [];
    const unzip = new Unzip((file) => {
      const chunks: Uint8Array[] = [];
      let length = 0;
      file.ondata = (error, data, final) => {
        if (error) throw error;
        length += data.byteLength;
        if (length > MAX_ENTRY_BYTES) throw new Error(`${file.name} inflates to more than ${MAX_ENTRY_BYTES} bytes`);
        chunks.push(data);
        if (final && file.name.endsWith(".json")) ready.push(Buffer.concat(chunks).toString("utf8"));
      };
      file.start();
    });
    unzip.register(UnzipInflate);
    for (let at = 0; at < bytes.byteLength; at += 65536) {
      unzip.push(bytes.subarray(at, at + 65536), at + 65536 >= bytes.byteLength);
      for (const json of ready.splice(0)) await add(compact(json));
    }
  } else {
    const value = JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
    for (const record of Array.isArray(value) ? value : [value]) await add(JSON.stringify(record));
  }
  await send();
  process.stderr.write("\n");
  process.stdout.write(`${JSON.stringify(totals)}\n`);
}

async function load(source: string): Promise<Uint8Array> {
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`${source} answered ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  return readFile(source);
}

/** A record's JSON without its whitespace; a record that is not JSON is sent as a string, for the registry to refuse. */
function compact(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json));
  } catch {
    return JSON.stringify(json);
  }
}
