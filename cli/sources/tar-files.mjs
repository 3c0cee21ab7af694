// Random access to the files in a tar archive on disk: one pass over the headers (ustar, GNU long names, pax
// extended headers, base-256 sizes) records where each file's bytes start, then any file is read or streamed from
// any offset without unpacking the archive. Symbolic and hard links (docker save links identical layers) resolve
// to their target.
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";

/** @typedef {{ offset: number, size: number, type: string, link?: string }} TarEntry */

const BLOCK = 512;

/**
 * @param {Buffer} block
 * @param {number} start
 * @param {number} length
 */
const text = (block, start, length) => {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? length : end).toString("utf8");
};

/**
 * A numeric header field: octal text, or base-256 when the high bit of its first byte is set (GNU, for > 8 GiB).
 * @param {Buffer} block
 * @param {number} start
 * @param {number} length
 */
function number(block, start, length) {
  const field = block.subarray(start, start + length);
  if ((field[0] ?? 0) & 0x80) {
    let value = (field[0] ?? 0) & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const digits = text(block, start, length).trim();
  return digits === "" ? 0 : parseInt(digits, 8);
}

/** @param {Buffer} block */
function checksumMatches(block) {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === number(block, 148, 8);
}

/**
 * Pax extended header records: "<length> <key>=<value>\n".
 * @param {Buffer} data
 */
function paxRecords(data) {
  /** @type {Record<string, string>} */
  const records = {};
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

/** @param {string} name */
const normalize = (name) => posix.normalize(name.replace(/^(\.\/|\/)+/, "")).replace(/\/$/, "");

export class TarFiles {
  /**
   * @param {string} path
   * @param {Map<string, TarEntry>} entries
   */
  constructor(path, entries) {
    this.path = path;
    this.entries = entries;
  }

  /**
   * Indexes the archive at `path`.
   * @param {string} path
   */
  static async index(path) {
    const handle = await open(path, "r");
    /** @type {Map<string, TarEntry>} */
    const entries = new Map();
    try {
      const { size: archiveSize } = await handle.stat();
      const block = Buffer.alloc(BLOCK);
      /** @type {Record<string, string>} */
      let pax = {};
      /** @type {string | undefined} */
      let longName;
      /** @type {string | undefined} */
      let longLink;
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

  /**
   * The regular file at `name`, following links.
   * @param {string} name
   * @returns {TarEntry | undefined}
   */
  entry(name) {
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

  /** @param {string} name */
  async has(name) {
    return this.entry(name) !== undefined;
  }

  /** @param {string} name */
  async size(name) {
    return this.#must(name).size;
  }

  /** @param {string} name */
  async read(name) {
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

  /**
   * The file's bytes from `start`.
   * @param {string} name
   * @param {number} start
   */
  open(name, start = 0) {
    const entry = this.#must(name);
    if (start >= entry.size) return Readable.from([]);
    return createReadStream(this.path, { start: entry.offset + start, end: entry.offset + entry.size - 1, highWaterMark: 1 << 20 });
  }

  /** @param {string} name */
  #must(name) {
    const entry = this.entry(name);
    if (!entry) throw new Error(`${name} is not in the archive ${this.path}`);
    return entry;
  }
}
