// `edge-oci-registry relay --to URL`: a local registry endpoint for unmodified clients (docker, podman, skopeo,
// containerd) in front of a registry that refuses large request bodies. Every request is forwarded as it is, except
// an upload body larger than the registry's OCI-Chunk-Max-Length (or of unknown length): that one is re-cut, as it
// streams, into consecutive PATCH requests of at most that size, so at most one socket buffer of it is in memory.
//   PATCH  <upload> with a big body  → PATCH, PATCH, …                    (answered with the last 202)
//   PUT    <upload>?digest= with one → PATCH, …, PUT ?digest= (no body)  (answered with the PUT's 201)
//   POST   uploads/?digest= with one → POST, PATCH, …, PUT ?digest=      (answered with the PUT's 201)
// Authorization headers and WWW-Authenticate challenges pass through untouched: clients fetch tokens from the
// registry's own token realm (or through the relay with --proxy-token). Location headers that point at the
// registry are rewritten to point at the relay.
import { once } from "node:events";
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { offsetOfRange } from "./http.ts";

export interface RelayOptions {
  target: URL;
  chunkSize?: number | undefined;
  proxyToken?: boolean;
  log: (message: string) => void;
  verbose?: boolean;
}

/** How a re-cut body went: where the upload is after it, or the registry's refusal (or the failure) to pass on. */
type ChunkedResult =
  | { ok: true; location: URL; last: IncomingMessage | null; sent: number; requests: number }
  | { ok: false; response: IncomingMessage | null; error?: Error };

export const RELAY_USAGE = `usage: edge-oci-registry relay --to URL [options]

  --to URL             the registry to forward to, e.g. https://registry.example.com
  --listen HOST:PORT   where clients connect (default 127.0.0.1:5000)
  --chunk-size BYTES   largest body sent to the registry (default: its OCI-Chunk-Max-Length)
  --proxy-token        point token realms at the relay too (when clients cannot reach the registry directly)
  --verbose            a line per request
  --quiet              no output but errors

  then: podman push --tls-verify=false localhost:5000/team/app:1
        skopeo copy --dest-tls-verify=false oci:./layout docker://localhost:5000/team/app:1
`;

const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/;
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect", "host",
]);
/** Used until the registry has said its limit (each upload's POST response carries it): below any plan's cap. */
const FALLBACK_CHUNK = 32 * 1024 * 1024;

/** A client's or the registry's headers without those that belong to one connection (and those in `drop`). */
function endToEnd(headers: IncomingHttpHeaders, drop: string[] = []): OutgoingHttpHeaders {
  const kept: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !drop.includes(name)) kept[name] = value;
  }
  return kept;
}

const ociError = (message: string): string => JSON.stringify({ errors: [{ code: "UNKNOWN", message, detail: null }] });

export function createRelay({ target, chunkSize, proxyToken = false, log, verbose = false }: RelayOptions): http.Server {
  const transport = target.protocol === "https:" ? https : http;
  const agent = new transport.Agent({ keepAlive: true });
  /** The registry's OCI-Chunk-Max-Length, once seen. */
  let advertised: number | undefined;

  const open = (method: string, url: URL, headers: OutgoingHttpHeaders) => {
    const outgoing = transport.request(url, { method, headers: { ...headers, host: target.host }, agent });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      outgoing.once("response", resolve);
      outgoing.on("error", reject);
    });
    response.catch(() => undefined);
    return { outgoing, response };
  };

  const learn = (response: IncomingMessage) => {
    const value = Number(response.headers["oci-chunk-max-length"]);
    if (Number.isSafeInteger(value) && value > 0) advertised = value;
  };

  /** The registry's headers as the client should see them: its Locations and (optionally) token realm on the relay. */
  const toClient = (response: IncomingMessage, relayOrigin: string) => {
    const headers = endToEnd(response.headers);
    const location = response.headers.location;
    if (location && /^https?:\/\//i.test(location)) {
      const url = new URL(location);
      if (url.origin === target.origin) headers.location = `${relayOrigin}${url.pathname}${url.search}`;
    }
    const challenge = response.headers["www-authenticate"];
    if (proxyToken && challenge) headers["www-authenticate"] = challenge.replaceAll(`realm="${target.origin}`, `realm="${relayOrigin}`);
    return headers;
  };

  /**
   * The largest body the registry takes: the flag, what it advertised, or asked for with a throwaway upload made
   * with the client's `headers` (its Authorization).
   */
  const limit = async (repository: string, headers: IncomingHttpHeaders): Promise<number> => {
    if (chunkSize !== undefined) return chunkSize;
    if (advertised !== undefined) return advertised;
    const probe = open("POST", new URL(`/v2/${repository}/blobs/uploads/`, target), { ...credentialsOf(headers), "content-length": "0" });
    probe.outgoing.end();
    const response = await probe.response;
    response.resume();
    learn(response);
    const location = response.headers.location;
    if (response.statusCode === 202 && location) {
      const cancel = open("DELETE", new URL(location, target), credentialsOf(headers));
      cancel.outgoing.end();
      (await cancel.response).resume();
    }
    return advertised ?? FALLBACK_CHUNK;
  };

  /**
   * Streams the client's body to the registry as PATCH requests of at most `max` bytes each, each one sent as the
   * bytes arrive; the next starts when the registry has answered the previous one (at the Location it gave).
   */
  const patchInChunks = async (req: IncomingMessage, location: URL, max: number): Promise<ChunkedResult> => {
    const declared = req.headers["content-length"] === undefined ? undefined : Number(req.headers["content-length"]);
    const clientRange = /^(\d+)-(\d+)$/.exec(req.headers["content-range"] ?? "");
    const base = endToEnd(req.headers, ["content-length", "content-range", "content-type"]);
    let sent = 0;
    let requests = 0;
    /** The upload's offset as the registry last reported it (known up front when the client said where it starts). */
    let offset = clientRange ? Number(clientRange[1]) : undefined;
    let last: IncomingMessage | null = null;

    /** A PATCH for the next at most `max` bytes, its body left open for them. */
    const start = () => {
      const length = declared === undefined ? undefined : Math.min(max, declared - sent);
      const headers: OutgoingHttpHeaders = { ...base, "content-type": "application/octet-stream" };
      if (length !== undefined) headers["content-length"] = String(length);
      if (length !== undefined && clientRange) {
        const first = Number(clientRange[1]) + sent;
        headers["content-range"] = `${first}-${first + length - 1}`;
      }
      requests += 1;
      const chunk = { ...open("PATCH", location, headers), written: 0, size: length ?? max, refused: null as IncomingMessage | null };
      // The registry may refuse before reading the body (401, 413): stop feeding it.
      chunk.response.then((response) => {
        if (response.statusCode !== 202) chunk.refused = response;
      }, () => undefined);
      return chunk;
    };
    type Chunk = ReturnType<typeof start>;

    /** Ends a PATCH and takes its answer: a refusal, or where the next one goes. */
    const finish = async (chunk: Chunk): Promise<IncomingMessage | null> => {
      chunk.outgoing.end();
      const answer = await chunk.response;
      if (answer.statusCode !== 202) return answer;
      answer.resume();
      learn(answer);
      last = answer;
      location = new URL(answer.headers.location ?? location.href, location);
      const reported = answer.headers.range === "0-0" ? undefined : offsetOfRange(answer.headers.range);
      if (reported !== undefined && offset !== undefined && reported !== offset + chunk.written) {
        throw new Error(`the registry is at ${reported} bytes after a chunk that should have taken it to ${offset + chunk.written}`);
      }
      offset = reported;
      return null;
    };

    let current: Chunk | null = null;
    const refusal = (refused: IncomingMessage) => {
      // Its connection goes once the refusal has been passed on.
      const outgoing = current?.outgoing;
      refused.once("end", () => outgoing?.destroy());
      return { ok: false, response: refused } as const;
    };
    try {
      // Not destroyed on an early return: the client must still get the registry's answer.
      for await (const data of req.iterator({ destroyOnReturn: false })) {
        let rest: Buffer = data;
        while (rest.length > 0) {
          const chunk = (current ??= start());
          if (chunk.refused) return refusal(chunk.refused);
          const piece = rest.subarray(0, chunk.size - chunk.written);
          rest = rest.subarray(piece.length);
          if (!chunk.outgoing.write(piece)) {
            await Promise.race([drained(chunk.outgoing), chunk.response]);
          }
          chunk.written += piece.length;
          sent += piece.length;
          if (chunk.written === chunk.size) {
            const refused = await finish(chunk);
            if (refused) return refusal(refused);
            current = null;
          }
        }
      }
      // A PATCH with an empty body still has to reach the registry to be answered.
      if (sent === 0) current = start();
      if (current) {
        const refused = await finish(current);
        if (refused) return refusal(refused);
        current = null;
      }
      return { ok: true, location, last, sent, requests };
    } catch (error) {
      const refused = current?.refused ?? null;
      if (!refused) current?.outgoing.destroy();
      return { ok: false, response: refused, error: error as Error };
    }
  };

  /**
   * Re-cuts an upload body too large for one request. `url` is the client's request, aimed at the registry;
   * `uploadId` is "" for a POST. Whether it did (else the request is forwarded as it is).
   */
  const recut = async (req: IncomingMessage, res: ServerResponse, url: URL, repository: string, uploadId: string, relayOrigin: string): Promise<boolean> => {
    const max = await limit(repository, req.headers);
    const declared = Number(req.headers["content-length"]);
    if (Number.isSafeInteger(declared) && declared <= max) return false;

    let location = url;
    const digest = url.searchParams.get("digest");
    if (!uploadId) {
      // A monolithic POST ?digest=: open a session for it instead.
      const started = open("POST", new URL(`/v2/${repository}/blobs/uploads/`, target), { ...credentialsOf(req.headers), "content-length": "0" });
      started.outgoing.end();
      const response = await started.response;
      learn(response);
      if (response.statusCode !== 202) {
        reply(res, response, relayOrigin, true);
        return true;
      }
      response.resume();
      location = new URL(response.headers.location ?? "", url);
    } else if (req.method === "PUT") {
      location = new URL(url);
      location.searchParams.delete("digest");
    }

    const result = await patchInChunks(req, location, max);
    if (!result.ok) {
      if (result.response) reply(res, result.response, relayOrigin, true);
      else fail(res, 502, `relay: the upload to ${target.origin} failed: ${result.error?.message ?? "unknown"}`);
      log(`${req.method} ${url.pathname}: failed${result.response ? ` with HTTP ${result.response.statusCode}` : `: ${result.error?.message}`}`);
      return true;
    }
    log(`${req.method} ${url.pathname}: ${result.sent} bytes re-cut into ${result.requests} PATCH requests of at most ${max}`);
    if (req.method === "PATCH") {
      if (result.last) reply(res, result.last, relayOrigin);
      return true;
    }
    const complete = new URL(result.location);
    if (digest !== null) complete.searchParams.set("digest", digest);
    const put = open("PUT", complete, { ...credentialsOf(req.headers), "content-length": "0" });
    put.outgoing.end();
    reply(res, await put.response, relayOrigin);
    return true;
  };

  /**
   * Sends the registry's answer on to the client, streaming its body. `closing`: the client's request body was not
   * read to its end, so the connection is closed after.
   */
  const reply = (res: ServerResponse, response: IncomingMessage, relayOrigin: string, closing = false) => {
    const headers = toClient(response, relayOrigin);
    if (closing) headers.connection = "close";
    res.writeHead(response.statusCode ?? 502, headers);
    response.pipe(res);
    response.once("error", () => res.destroy());
  };

  const fail = (res: ServerResponse, status: number, message: string) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { "content-type": "application/json", connection: "close" });
    res.end(ociError(message));
  };

  /** Forwards a request as it is, streaming the body both ways. */
  const forward = async (req: IncomingMessage, res: ServerResponse, url: URL, relayOrigin: string) => {
    const { outgoing, response } = open(req.method ?? "GET", url, endToEnd(req.headers));
    req.pipe(outgoing);
    req.once("error", () => outgoing.destroy());
    res.once("close", () => {
      if (!res.writableFinished) outgoing.destroy();
    });
    const answer = await response;
    if (req.method === "POST" && UPLOADS.test(url.pathname)) learn(answer);
    reply(res, answer, relayOrigin, !req.complete);
  };

  return http.createServer((req, res) => {
    const relayOrigin = `http://${req.headers.host ?? "localhost"}`;
    const url = new URL(req.url ?? "/", target);
    if (verbose) log(`${req.method} ${url.pathname}${url.search}`);
    const upload = UPLOADS.exec(url.pathname);
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    const recuttable =
      upload !== null &&
      hasBody &&
      ((req.method === "PATCH" && upload[2] !== "") ||
        (req.method === "PUT" && upload[2] !== "" && url.searchParams.has("digest")) ||
        (req.method === "POST" && upload[2] === "" && url.searchParams.has("digest") && !url.searchParams.has("mount")));
    (async () => {
      if (recuttable && upload && (await recut(req, res, url, upload[1] ?? "", upload[2] ?? "", relayOrigin))) return;
      await forward(req, res, url, relayOrigin);
    })().catch((error) => {
      log(`${req.method} ${url.pathname}: ${error.message}`);
      fail(res, 502, `relay: ${target.origin} failed: ${error.message}`);
    });
  });
}

/** Resolves when a request's body may be written to again (or it is gone), leaving no listeners behind. */
function drained(outgoing: ClientRequest): Promise<void> {
  return new Promise((done) => {
    const settle = () => {
      outgoing.off("drain", settle);
      outgoing.off("close", settle);
      done();
    };
    outgoing.on("drain", settle);
    outgoing.on("close", settle);
  });
}

/** The client's credentials, for requests the relay makes on its behalf. */
function credentialsOf(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return {
    ...(headers.authorization && { authorization: headers.authorization }),
    ...(headers["user-agent"] && { "user-agent": headers["user-agent"] }),
  };
}

export async function relay(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      to: { type: "string" },
      listen: { type: "string", default: "127.0.0.1:5000" },
      "chunk-size": { type: "string" },
      "proxy-token": { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(RELAY_USAGE);
    return;
  }
  if (!values.to) throw new Error(`--to is required\n\n${RELAY_USAGE}`);
  const target = new URL(values.to);
  if (target.pathname !== "/" || !/^https?:$/.test(target.protocol)) throw new Error(`--to must be an http(s) origin, not ${values.to}`);
  const chunkSize = values["chunk-size"] === undefined ? undefined : Number(values["chunk-size"]);
  if (chunkSize !== undefined && !(Number.isSafeInteger(chunkSize) && chunkSize > 0)) throw new Error(`bad --chunk-size ${values["chunk-size"]}`);
  const listen = /^(.*):(\d+)$/.exec(values.listen);
  if (!listen) throw new Error(`--listen must be HOST:PORT, not ${values.listen}`);
  const quiet = values.quiet;
  const log = (message: string) => {
    if (!quiet || message.includes("fail")) process.stderr.write(`${new Date().toISOString()} ${message}\n`);
  };

  const server = createRelay({ target, chunkSize, proxyToken: values["proxy-token"], log, verbose: values.verbose });
  // Uploads of many GiB take longer than node's default 5-minute request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  const host = (listen[1] ?? "").replace(/^\[(.*)\]$/, "$1");
  server.listen(Number(listen[2]), host);
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  process.stderr.write(`relay listening on http://${shown}:${address.port}, forwarding to ${target.origin}\n`);
  await new Promise((done) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, done);
  });
  server.close();
  server.closeAllConnections();
}
