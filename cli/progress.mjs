// What a push shows while it runs: on a terminal, one bar per blob being uploaded, redrawn in place; otherwise
// (CI logs, pipes) plain lines when a blob starts, is skipped, retries and finishes.

/** @typedef {{ advance(bytes: number): void, set(bytes: number): void, note(message: string): void, done(message: string): void }} ProgressItem */

const MiB = 1024 * 1024;
const REDRAW_MS = 100;

/** @param {number} bytes */
export const formatBytes = (bytes) =>
  bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(2)} GiB` : bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

/** @param {string} digest */
export const shortDigest = (digest) => digest.replace(/^sha256:/, "").slice(0, 12);

export class Progress {
  /**
   * @param {{ stream?: NodeJS.WriteStream, tty?: boolean, quiet?: boolean, verbose?: boolean }} [options]
   */
  constructor({ stream = process.stderr, tty = Boolean(stream.isTTY), quiet = false, verbose = false } = {}) {
    this.stream = stream;
    this.tty = tty && !quiet;
    this.quiet = quiet;
    this.verbose = verbose;
    /** @type {Set<{ label: string, total: number, sent: number, started: number }>} */
    this.active = new Set();
    this.drawn = 0;
    /** @type {NodeJS.Timeout | null} */
    this.timer = null;
  }

  /** @param {string} message */
  log(message) {
    if (this.quiet) return;
    if (this.tty) this.#clear();
    this.stream.write(`${message}\n`);
    if (this.tty) this.#draw();
  }

  /**
   * @param {string} label
   * @param {number} total bytes
   * @returns {ProgressItem}
   */
  item(label, total) {
    const bar = { label, total, sent: 0, started: Date.now() };
    this.active.add(bar);
    if (!this.tty) this.log(`${label}: uploading ${formatBytes(total)}`);
    this.#schedule();
    return {
      advance: (bytes) => {
        bar.sent += bytes;
        this.#schedule();
      },
      set: (bytes) => {
        bar.sent = bytes;
        this.#schedule();
      },
      note: (message) => {
        if (this.verbose || !message.startsWith("sent ")) this.log(`${label}: ${message}`);
      },
      done: (message) => {
        this.active.delete(bar);
        this.log(`${label}: ${message}`);
      },
    };
  }

  finish() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.tty) this.#clear();
  }

  #schedule() {
    if (!this.tty || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.#clear();
      this.#draw();
    }, REDRAW_MS);
    this.timer.unref();
  }

  #clear() {
    if (this.drawn > 0) this.stream.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  #draw() {
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - 60));
    const lines = [];
    for (const bar of this.active) {
      const fraction = bar.total > 0 ? Math.min(1, bar.sent / bar.total) : 1;
      const filled = Math.round(fraction * width);
      const seconds = Math.max(0.001, (Date.now() - bar.started) / 1000);
      lines.push(
        `${bar.label} [${"=".repeat(filled)}${" ".repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
          `${formatBytes(bar.sent)}/${formatBytes(bar.total)} ${formatBytes(bar.sent / seconds)}/s`,
      );
    }
    if (lines.length > 0) this.stream.write(`${lines.join("\n")}\n`);
    this.drawn = lines.length;
  }
}
