// The same file access as TarFiles, over a directory (an OCI layout, or an unpacked docker save).
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join, resolve, sep } from "node:path";

export class DirectoryFiles {
  /** @param {string} root */
  constructor(root) {
    this.root = resolve(root);
  }

  /** @param {string} name a path inside the directory */
  path(name) {
    const path = resolve(join(this.root, name));
    if (path !== this.root && !path.startsWith(this.root + sep)) throw new Error(`${name} is outside ${this.root}`);
    return path;
  }

  /** @param {string} name */
  async has(name) {
    return stat(this.path(name)).then((found) => found.isFile(), () => false);
  }

  /** @param {string} name */
  async size(name) {
    return (await stat(this.path(name))).size;
  }

  /** @param {string} name */
  read(name) {
    return readFile(this.path(name));
  }

  /**
   * @param {string} name
   * @param {number} start
   */
  open(name, start = 0) {
    return createReadStream(this.path(name), { start, highWaterMark: 1 << 20 });
  }
}
