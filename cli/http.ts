// One HTTP request over node:http or node:https with a streamed body and a streamed response, for the push command
// and the relay. fetch() is not used: it cannot send a body of known length without buffering or chunked encoding,
// and the relay needs the raw response stream.
import http, { type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 16 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 16 }),
};

export interface SendOptions {
  method: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer | Readable | null;
  signal?: AbortSignal;
}

/**
 * Sends a request and resolves with the response as soon as its head arrives (the body is left to the caller, who
 * must read or discard it). A stream body is piped with backpressure; when the server answers before reading it all
 * (413, 401), the rest of the body is not sent and the answer still resolves.
 */
export function send(url: URL, { method, headers = {}, body = null, signal }: SendOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === "https:" ? https : http;
    const agent = url.protocol === "https:" ? agents["https:"] : agents["http:"];
    const outgoing = transport.request(url, { method, headers, agent, signal });
    let answered = false;
    outgoing.on("response", (response) => {
      answered = true;
      resolve(response);
    });
    outgoing.on("error", (error) => {
      if (body && !Buffer.isBuffer(body)) body.destroy();
      if (!answered) reject(error);
    });
    if (body === null) {
      outgoing.end();
    } else if (Buffer.isBuffer(body)) {
      outgoing.end(body);
    } else {
      body.on("error", (error) => outgoing.destroy(error));
      outgoing.on("close", () => body.destroy());
      body.pipe(outgoing);
    }
  });
}

/** Reads a (small) response body as text, keeping `limit` bytes; the rest is read and dropped. */
export async function readText(response: IncomingMessage, limit = 1 << 20): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    if (size < limit) parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts).subarray(0, limit).toString("utf8");
}

/** Throws the rest of a response body away so that its connection can be reused. */
export function discard(response: IncomingMessage): void {
  response.resume();
}

/** A header's single value; `name` in lower case. */
export function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The end of an upload's `Range: 0-<last>` header as the next offset to send (the registry says "0-0" for an empty
 * session as distribution does, which cannot be told from one byte; callers treat it as 0 and let a 416 correct them).
 */
export function offsetOfRange(range: string | undefined): number | undefined {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? "");
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
