// What a push shows while it runs: on a terminal, one bar per blob being uploaded, redrawn in place; otherwise
// (CI logs, pipes) plain lines when a blob starts, is skipped, retries and finishes.

export interface ProgressItem {
  advance(bytes: number): void;
  set(bytes: number): void;
  note(message: string): void;
  done(message: string): void;
}

interface Bar {
  label: string;
  total: number;
  sent: number;
  started: number;
}

const MiB = 1024 * 1024;
const REDRAW_MS = 100;

export const formatBytes = (bytes: number): string =>
  bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(2)} GiB` : bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

export const shortDigest = (digest: string): string => digest.replace(/^sha256:/, "").slice(0, 12);

export class Progress {
  readonly stream: NodeJS.WriteStream;
  readonly tty: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly active = new Set<Bar>();
  drawn = 0;
  timer: NodeJS.Timeout | null = null;

  constructor({
    stream = process.stderr,
    tty = Boolean(stream.isTTY),
    quiet = false,
    verbose = false,
  }: { stream?: NodeJS.WriteStream; tty?: boolean; quiet?: boolean; verbose?: boolean } = {}) {
    this.stream = stream;
    this.tty = tty && !quiet;
    this.quiet = quiet;
    this.verbose = verbose;
  }

  log(message: string): void {
    if (this.quiet) return;
    if (this.tty) this.#clear();
    this.stream.write(`${message}\n`);
    if (this.tty) this.#draw();
  }

  /** A bar for `total` bytes. */
  item(label: string, total: number): ProgressItem {
    const bar: Bar = { label, total, sent: 0, started: Date.now() };
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

  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.tty) this.#clear();
  }

  #schedule(): void {
    if (!this.tty || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.#clear();
      this.#draw();
    }, REDRAW_MS);
    this.timer.unref();
  }

  #clear(): void {
    if (this.drawn > 0) this.stream.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  #draw(): void {
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
