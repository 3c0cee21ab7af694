import type { Config } from "../config";
import { quotaExceeded, storageUsage } from "../storage/blob-records";

/**
 * The optional storage quota (STORAGE_QUOTA_BYTES). The count it reads is kept in the same D1 batches as the blob rows
 * it counts, and recording a blob checks it again inside its own insert; this check only refuses early, before a
 * client sends bytes that could not be recorded.
 */
export class QuotaService {
  constructor(
    private readonly db: D1Database,
    private readonly config: Config,
  ) {}

  async usage(): Promise<{ bytes: number; blobs: number; quota: number | null }> {
    return { ...(await storageUsage(this.db)), quota: this.config.STORAGE_QUOTA_BYTES ?? null };
  }

  /** Whether a quota is set, so that callers skip work needed only for the check. */
  get enabled(): boolean {
    return this.config.STORAGE_QUOTA_BYTES !== undefined;
  }

  /** Refuses with DENIED, naming the quota, when `additional` more bytes would not fit. */
  async ensureRoom(additional: number): Promise<void> {
    const quota = this.config.STORAGE_QUOTA_BYTES;
    if (quota === undefined) return;
    const usage = await storageUsage(this.db);
    if (usage.bytes + additional > quota) throw quotaExceeded(quota, additional, usage);
  }
}
