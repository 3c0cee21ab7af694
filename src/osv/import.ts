// Importing OSV records: a JSON record or array of them, or OSV's per-ecosystem export (all.zip, one record per
// entry), streamed through a zip reader with bounded memory: every entry is inflated at most MAX_ENTRY_BYTES (a zip
// bomb's entry is cut off there, and its inflating stops), and at most `maxRecords` records are imported per call,
// written MAX_WRITE_BATCH at a time; an archive not read to its end reports the entry to resume from (`next`).
import { Inflate, Unzip, type AsyncFlateStreamHandler, type FlateError, type UnzipFile } from "fflate";
import type { Database } from "../storage/database";
import { OsvRecords } from "../storage/osv-records";
import { parseRecord, type Advisory } from "./record";
import { ecosystemBase } from "./versions";

/** One record's JSON, inflated, at most this. */
export const MAX_ENTRY_BYTES = 4 * 1024 * 1024;
/** Records written per D1 batch. */
const MAX_WRITE_BATCH = 100;
/** Zip bytes pushed to the reader at once: what one push can inflate to is bounded by ~1000 times this. */
const ZIP_SLICE_BYTES = 4096;
/** Problems listed in a report (all are counted). */
const MAX_LISTED_PROBLEMS = 20;

export interface ImportProblem {
  entry?: string;
  id: string | null;
  reason: string;
}

export interface ImportReport {
  /** Records read (zip: entries past the skipped ones, JSON: array items). */
  received: number;
  /** Records written: new, or changed since the stored copy (`modified`). */
  imported: number;
  unchanged: number;
  rejected: number;
  problems: ImportProblem[];
  /** Zip only: entries read (skipped included), and the entry to resume from, or null when the archive ended. */
  entries?: number;
  next?: number | null;
  generation: number;
}

export interface ImportLimits {
  maxRecords: number;
  /** Epoch milliseconds past which no more records are started. */
  deadline: number;
}

/** Collects records and writes them in batches, skipping ones stored with the same `modified`. */
class RecordWriter {
  private pending = new Map<string, Advisory>();
  readonly report: ImportReport = { received: 0, imported: 0, unchanged: 0, rejected: 0, problems: [], generation: 0 };
  private readonly records: OsvRecords;

  constructor(
    db: Database,
    private readonly ecosystem: string | null,
  ) {
    this.records = new OsvRecords(db);
  }

  reject(problem: ImportProblem): void {
    this.report.rejected++;
    if (this.report.problems.length < MAX_LISTED_PROBLEMS) this.report.problems.push(problem);
  }

  async add(value: unknown, entry?: string): Promise<void> {
    this.report.received++;
    const parsed = parseRecord(value);
    if (!parsed.ok) return this.reject({ entry, id: parsed.id, reason: parsed.reason });
    const { advisory } = parsed;
    if (this.ecosystem !== null && !advisory.affected.some((row) => row.ecosystem === this.ecosystem || ecosystemBase(row.ecosystem) === this.ecosystem)) {
      return this.reject({ entry, id: advisory.id, reason: `affects no ${this.ecosystem} package` });
    }
    // A record twice in one import: the later copy wins.
    this.pending.set(advisory.id, advisory);
    if (this.pending.size >= MAX_WRITE_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    if (batch.length === 0) return;
    const stored = await this.records.modifiedOf(batch.map((advisory) => advisory.id));
    const changed = batch.filter((advisory) => stored.get(advisory.id) !== advisory.modified);
    this.report.unchanged += batch.length - changed.length;
    this.report.imported += changed.length;
    await this.records.write(changed, Date.now());
  }

  async finish(): Promise<ImportReport> {
    await this.flush();
    this.report.generation = await this.records.generation();
    return this.report;
  }
}

/** Imports a parsed JSON body: one record, or an array of records. */
export async function importJson(db: Database, value: unknown, ecosystem: string | null): Promise<ImportReport> {
  const writer = new RecordWriter(db, ecosystem);
  for (const item of Array.isArray(value) ? value : [value]) await writer.add(item);
  return writer.finish();
}

// fflate's inflater for zip entries, with a stop: a terminated entry's remaining bytes pass without being inflated.
class StoppableInflate {
  static readonly compression = 8;
  ondata: AsyncFlateStreamHandler = () => undefined;
  private stopped = false;
  private readonly inflate = new Inflate((data, final) => this.ondata(null, data, final));

  push(chunk: Uint8Array, final: boolean): void {
    if (this.stopped) return;
    try {
      this.inflate.push(chunk, final);
    } catch (error) {
      this.stopped = true;
      this.ondata(error as FlateError, new Uint8Array(), final);
    }
  }

  terminate(): void {
    this.stopped = true;
  }
}

export class ZipInvalid extends Error {}

/**
 * Imports an OSV export read from `body`: entries before `skip` are passed over (inflated within the entry bound,
 * not parsed), then records are imported until the archive ends, `maxRecords` were read or the deadline passed.
 */
export async function importZip(db: Database, body: ReadableStream<Uint8Array>, ecosystem: string | null, skip: number, limits: ImportLimits): Promise<ImportReport> {
  const writer = new RecordWriter(db, ecosystem);
  const ready: { entry: string; index: number; bytes: Uint8Array[] | null; reason?: string }[] = [];
  let index = 0;
  let stopAt: number | null = null;
  // Entries before this one are done with (imported, refused or passed over): where a stop on the clock resumes.
  let finished = 0;
  const unzip = new Unzip((file: UnzipFile) => {
    const entry = index++;
    const wanted = entry >= skip && stopAt === null && file.name.endsWith(".json");
    const chunks: Uint8Array[] = [];
    let size = 0;
    let over = false;
    file.ondata = (error, data, final) => {
      if (over) return;
      if (error) {
        over = true;
        finished = entry + 1;
        if (wanted) ready.push({ entry: file.name, index: entry, bytes: null, reason: `not inflatable: ${error.message}` });
        return;
      }
      size += data.byteLength;
      if (size > MAX_ENTRY_BYTES) {
        over = true;
        finished = entry + 1;
        file.terminate();
        if (wanted) ready.push({ entry: file.name, index: entry, bytes: null, reason: `inflates to more than ${MAX_ENTRY_BYTES} bytes` });
        return;
      }
      if (wanted) chunks.push(data);
      if (final) finished = entry + 1;
      if (final && wanted) ready.push({ entry: file.name, index: entry, bytes: chunks });
    };
    // Every entry is started, even a skipped one: the reader would otherwise keep its bytes.
    if (file.compression !== 0 && file.compression !== 8) throw new ZipInvalid(`${file.name}: compression method ${file.compression} is not supported (only stored and deflate)`);
    file.start();
  });
  unzip.register(StoppableInflate);
  const reader = body.getReader();
  let ended = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      for (let at = 0; value && at < value.byteLength; at += ZIP_SLICE_BYTES) {
        unzip.push(value.subarray(at, at + ZIP_SLICE_BYTES), false);
        for (const item of ready.splice(0)) {
          if (stopAt !== null) break;
          if (writer.report.received >= limits.maxRecords || Date.now() >= limits.deadline) {
            stopAt = item.index;
            break;
          }
          if (item.bytes === null) {
            writer.report.received++;
            writer.reject({ entry: item.entry, id: null, reason: item.reason! });
          } else await writer.add(parseJson(item.bytes), item.entry);
        }
        // Entries passed over (before `skip`, not records) take time too: the clock stops them as well.
        if (stopAt === null && Date.now() >= limits.deadline) stopAt = Math.max(finished, skip);
        if (stopAt !== null) break;
      }
      if (stopAt !== null) break;
      if (done) {
        unzip.push(new Uint8Array(), true);
        ended = true;
        break;
      }
    }
  } catch (error) {
    if (error instanceof ZipInvalid) throw error;
    throw new ZipInvalid(`not a zip archive OSV can export: ${(error as Error).message}`);
  } finally {
    if (!ended) await reader.cancel().catch(() => undefined);
  }
  for (const item of ready.splice(0)) {
    if (stopAt !== null) break;
    if (item.bytes === null) {
      writer.report.received++;
      writer.reject({ entry: item.entry, id: null, reason: item.reason! });
    } else await writer.add(parseJson(item.bytes), item.entry);
  }
  if (index === 0) throw new ZipInvalid("not a zip archive: no entries");
  const report = await writer.finish();
  return { ...report, entries: index, next: stopAt };
}

function parseJson(chunks: Uint8Array[]): unknown {
  const decoder = new TextDecoder();
  let text = "";
  for (const chunk of chunks) text += decoder.decode(chunk, { stream: true });
  text += decoder.decode();
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
