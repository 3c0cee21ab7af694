import type { Config } from "../config";
import { RegistryError } from "../errors";
import { storageUsage } from "../storage/blob-records";

/** The optional storage quota (STORAGE_QUOTA_BYTES): checked before a push takes more room. */
export class QuotaService {
  constructor(
    private readonly db: D1Database,
    private readonly config: Config,
  ) {}

  async usage(): Promise<{ bytes: number; blobs: number; quota: number | null }> {
    return { ...(await storageUsage(this.db)), quota: this.config.STORAGE_QUOTA_BYTES ?? null };
  }

  /** Refuses with DENIED, naming the quota, when `additional` more bytes would not fit. */
  async ensureRoom(additional: number): Promise<void> {
    const quota = this.config.STORAGE_QUOTA_BYTES;
    if (quota === undefined) return;
    const { bytes } = await storageUsage(this.db);
    if (bytes + additional > quota) {
      throw new RegistryError("DENIED", { quota, used: bytes, needed: additional }, {
        message: `storage quota exceeded: this registry may store ${quota} bytes (STORAGE_QUOTA_BYTES) and holds ${bytes}`,
      });
    }
  }
}
