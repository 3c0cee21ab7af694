// The same file access as TarFiles, over a directory (an OCI layout, or an unpacked docker save).
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import type { Readable } from "node:stream";

export class DirectoryFiles {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Where `name`, a path inside the directory, is on disk. */
  path(name: string): string {
    const path = resolve(join(this.root, name));
    if (path !== this.root && !path.startsWith(this.root + sep)) throw new Error(`${name} is outside ${this.root}`);
    return path;
  }

  async has(name: string): Promise<boolean> {
    return stat(this.path(name)).then((found) => found.isFile(), () => false);
  }

  async size(name: string): Promise<number> {
    return (await stat(this.path(name))).size;
  }

  read(name: string): Promise<Buffer> {
    return readFile(this.path(name));
  }

  open(name: string, start = 0): Readable {
    return createReadStream(this.path(name), { start, highWaterMark: 1 << 20 });
  }
}
