// SQL for the mirror's own bookkeeping: when a mirrored tag was last revalidated upstream.

export class MirrorRecords {
  constructor(private readonly db: D1Database) {}

  async checkedAt(repository: string, tag: string): Promise<number | null> {
    const row = await this.db
      .prepare("SELECT checked_at FROM mirror_checks WHERE repository = ? AND tag = ?")
      .bind(repository, tag)
      .first<{ checked_at: number }>();
    return row?.checked_at ?? null;
  }

  async markChecked(repository: string, tag: string, at = Date.now()): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO mirror_checks (repository, tag, checked_at) VALUES (?, ?, ?)
         ON CONFLICT (repository, tag) DO UPDATE SET checked_at = excluded.checked_at`,
      )
      .bind(repository, tag, at)
      .run();
  }
}
