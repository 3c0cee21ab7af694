// Where each unfinished upload is, kept on disk so that a push that was killed or lost its network resumes its
// uploads from the offset the registry reports instead of sending the blobs again. Entries are removed when their
// upload completes and forgotten after a day (the registry's default UPLOAD_TTL_SECONDS).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

export interface SavedUpload {
  location: string;
  chunkSize: number | null;
  savedAt: number;
}

const MAX_AGE_MS = 24 * 60 * 60 * 1000;

export function defaultStateFile(): string {
  const base = process.env.XDG_STATE_HOME ?? join(homedir(), ".local", "state");
  return join(base, "edge-oci-registry", "uploads.json");
}

export class UploadState {
  readonly file: string | null;
  queue: Promise<unknown> = Promise.resolve();

  /** `file` null: keep nothing. */
  constructor(file: string | null) {
    this.file = file;
  }

  async #load(): Promise<Record<string, SavedUpload>> {
    if (!this.file) return {};
    try {
      const saved = JSON.parse(await readFile(this.file, "utf8"));
      return saved && typeof saved === "object" ? saved : {};
    } catch {
      return {};
    }
  }

  /**
   * Changes the file under a lock within this process (read, change, write to a temporary name, rename), so that
   * concurrent blob uploads do not lose each other's entries.
   */
  #update(change: (entries: Record<string, SavedUpload>) => void): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const next = this.queue.then(async () => {
      const entries = await this.#load();
      change(entries);
      for (const [key, entry] of Object.entries(entries)) if (Date.now() - entry.savedAt > MAX_AGE_MS) delete entries[key];
      await mkdir(dirname(file), { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(entries, null, 1));
      await rename(temporary, file);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  async get(key: string): Promise<SavedUpload | undefined> {
    await this.queue;
    const entry = (await this.#load())[key];
    return entry && Date.now() - entry.savedAt <= MAX_AGE_MS ? entry : undefined;
  }

  set(key: string, location: string, chunkSize: number | null): Promise<void> {
    return this.#update((entries) => {
      entries[key] = { location, chunkSize, savedAt: Date.now() };
    });
  }

  delete(key: string): Promise<void> {
    return this.#update((entries) => {
      delete entries[key];
    });
  }
}
