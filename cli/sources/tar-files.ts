// Random access to the files in a tar archive on disk: one pass over the headers (ustar, GNU long names, pax
// extended headers, base-256 sizes) records where each file's bytes start, then any file is read or streamed from
// any offset without unpacking the archive. Symbolic and hard links (docker save links identical layers) resolve
// to their target.
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";

export interface TarEntry {
  offset: number;
  size: number;
  type: string;
  link?: string;
}

const BLOCK = 512;

const text = (block: Buffer, start: number, length: number): string => {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? length : end).toString("utf8");
};

/** A numeric header field: octal text, or base-256 when the high bit of its first byte is set (GNU, for > 8 GiB). */
function number(block: Buffer, start: number, length: number): number {
  const field = block.subarray(start, start + length);
  if ((field[0] ?? 0) & 0x80) {
    let value = (field[0] ?? 0) & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const digits = text(block, start, length).trim();
  return digits === "" ? 0 : parseInt(digits, 8);
}

function checksumMatches(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === number(block, 148, 8);
}

/** Pax extended header records: "<length> <key>=<value>\n". */
function paxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(data.subarray(at, space).toString());
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    at += length;
  }
  return records;
}

const normalize = (name: string): string => posix.normalize(name.replace(/^(\.\/|\/)+/, "")).replace(/\/$/, "");

export class TarFiles {
  readonly path: string;
  readonly entries: Map<string, TarEntry>;

  constructor(path: string, entries: Map<string, TarEntry>) {
    this.path = path;
    this.entries = entries;
  }

  /** Indexes the archive at `path`. */
  static async index(path: string): Promise<TarFiles> {
    const handle = await open(path, "r");
    const entries = new Map<string, TarEntry>();
    try {
      const { size: archiveSize } = await handle.stat();
      const block = Buffer.alloc(BLOCK);
      let pax: Record<string, string> = {};
      let longName: string | undefined;
      let longLink: string | undefined;
      let position = 0;
      while (position + BLOCK <= archiveSize) {
        await handle.read(block, 0, BLOCK, position);
        if (block.every((byte) => byte === 0)) break; // end of archive
        if (!checksumMatches(block)) throw new Error(`${path} is not a tar archive (bad header at byte ${position})`);
        const type = String.fromCharCode(block[156] || 0x30);
        const size = pax.size !== undefined ? Number(pax.size) : number(block, 124, 12);
        const dataOffset = position + BLOCK;
        position = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
        if (type === "x" || type === "g" || type === "L" || type === "K") {
          const data = Buffer.alloc(size);
          await handle.read(data, 0, size, dataOffset);
          if (type === "x") pax = paxRecords(data);
          else if (type === "L") longName = text(data, 0, size);
          else if (type === "K") longLink = text(data, 0, size);
          continue; // "g" (global) carries nothing we need
        }
        const prefix = text(block, 257, 6).startsWith("ustar") ? text(block, 345, 155) : "";
        const name = pax.path ?? longName ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
        const link = pax.linkpath ?? longLink ?? text(block, 157, 100);
        entries.set(normalize(name), { offset: dataOffset, size, type, ...(link && { link }) });
        pax = {};
        longName = undefined;
        longLink = undefined;
      }
    } finally {
      await handle.close();
    }
    return new TarFiles(path, entries);
  }

  /** The regular file at `name`, following links. */
  entry(name: string): TarEntry | undefined {
    let key = normalize(name);
    for (let hops = 0; hops < 16; hops++) {
      const entry = this.entries.get(key);
      if (!entry) return undefined;
      if (entry.type === "0" || entry.type === "7") return entry;
      if (!entry.link || (entry.type !== "1" && entry.type !== "2")) return undefined;
      // A hard link names an archive path; a symbolic link is relative to its own directory.
      key = normalize(entry.type === "1" ? entry.link : posix.join(posix.dirname(key), entry.link));
    }
    return undefined;
  }

  async has(name: string): Promise<boolean> {
    return this.entry(name) !== undefined;
  }

  async size(name: string): Promise<number> {
    return this.#must(name).size;
  }

  async read(name: string): Promise<Buffer> {
    const entry = this.#must(name);
    const handle = await open(this.path, "r");
    try {
      const data = Buffer.alloc(entry.size);
      await handle.read(data, 0, entry.size, entry.offset);
      return data;
    } finally {
      await handle.close();
    }
  }

  /** The file's bytes from `start`. */
  open(name: string, start = 0): Readable {
    const entry = this.#must(name);
    if (start >= entry.size) return Readable.from([]);
    return createReadStream(this.path, { start: entry.offset + start, end: entry.offset + entry.size - 1, highWaterMark: 1 << 20 });
  }

  #must(name: string): TarEntry {
    const entry = this.entry(name);
    if (!entry) throw new Error(`${name} is not in the archive ${this.path}`);
    return entry;
  }
}
