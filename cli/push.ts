// `edge-oci-registry push SOURCE DESTINATION`: pushes an image (or a multi-platform index) from an OCI layout, a
// docker-archive or oci-archive tarball (or stdin), or another registry, in chunks the registry accepts.
import { parseArgs } from "node:util";
import { pushBlob, type UploadTarget } from "./blob-upload.ts";
import { credentialsFor } from "./credentials.ts";
import { discard, header } from "./http.ts";
import { referencesOf, type Descriptor, type Manifest } from "./manifests.ts";
import { Progress, formatBytes, shortDigest } from "./progress.ts";
import { formatReference, parseReference } from "./reference.ts";
import { RegistryClient, fail } from "./registry-client.ts";
import { openSource, type ImageSource } from "./sources/open-source.ts";
import { UploadState, defaultStateFile } from "./upload-state.ts";

export const PUSH_USAGE = `usage: edge-oci-registry push [options] SOURCE DESTINATION

SOURCE       an OCI layout directory (oci:DIR[:REF] also works)
             a docker save / podman save tarball, or an OCI archive (file, .tar.gz, or - for stdin)
             docker://HOST/REPOSITORY:TAG   an image in a registry
DESTINATION  [http://|https://]HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]   (https unless given or --plain-http; tag latest if none)

  --image REF          which image of a layout or archive holding several (ref name, RepoTag, or index)
  --creds USER:TOKEN   credentials for the destination (default: $REGISTRY_TOKEN, else the docker/podman auth file)
  --src-creds USER:PW  credentials for a docker:// source (default: the auth files)
  --from REPOSITORY    mount blobs from this repository of the destination registry when it has them
  --chunk-size BYTES   largest PATCH body (default: the registry's OCI-Chunk-Max-Length; one request if none)
  --parallel N         blobs uploaded at once (default 3)
  --retries N          retries of a failed chunk, each from the offset the registry reports (default 5)
  --state FILE         where unfinished uploads are remembered for resuming (default ${defaultStateFile()})
  --no-state           remember nothing
  --plain-http         use http:// for references without a scheme
  --json               print a JSON summary on stdout
  --verbose            a line per chunk
  --quiet              no progress output
`;

const OPTIONS = {
  image: { type: "string" },
  creds: { type: "string" },
  "src-creds": { type: "string" },
  from: { type: "string" },
  "chunk-size": { type: "string" },
  parallel: { type: "string", default: "3" },
  retries: { type: "string", default: "5" },
  state: { type: "string" },
  "no-state": { type: "boolean", default: false },
  "plain-http": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function integer(text: string | undefined, name: string, min: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text.replace(/_/g, ""));
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`--${name} must be an integer of at least ${min}, not ${text}`);
  return value;
}

/** Runs `work` over `items` with at most `limit` at a time; the first failure stops new work and is thrown. */
async function inParallel<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index] as T);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every manifest below `root` (children before their parents) and every blob they refer to. */
async function walk(source: ImageSource, root: Manifest): Promise<{ children: Manifest[]; blobs: Descriptor[] }> {
  const children: Manifest[] = [];
  const blobs = new Map<string, Descriptor>();
  const visit = async (manifest: Manifest) => {
    const refs = referencesOf(manifest);
    for (const child of refs.children) {
      if (children.some((known) => known.digest === child.digest)) continue;
      const fetched = await source.manifest(child);
      await visit(fetched);
      children.push(fetched);
    }
    for (const blob of refs.blobs) blobs.set(blob.digest, blob);
  };
  await visit(root);
  return { children, blobs: [...blobs.values()] };
}

/** `reference`: a tag or a digest. */
async function putManifest(client: RegistryClient, repository: string, reference: string, manifest: Manifest): Promise<void> {
  const response = await client.request("PUT", `/v2/${repository}/manifests/${reference}`, {
    headers: { "Content-Type": manifest.mediaType, "Content-Length": String(manifest.bytes.length) },
    body: () => manifest.bytes,
  });
  if (response.statusCode !== 201) return fail(response, `PUT ${repository} manifest ${reference}`);
  discard(response);
  const digest = header(response, "docker-content-digest");
  if (digest && digest !== manifest.digest) throw new Error(`the registry stored manifest ${manifest.digest} as ${digest}`);
}

export async function push(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true });
  if (values.help) {
    process.stdout.write(PUSH_USAGE);
    return;
  }
  const [sourceText, destinationText, ...extra] = positionals;
  if (!sourceText || !destinationText || extra.length > 0) throw new UsageError(PUSH_USAGE);
  const destination = parseReference(destinationText, { plainHttp: values["plain-http"] });
  const chunkSize = integer(values["chunk-size"], "chunk-size", 1);
  const parallel = integer(values.parallel, "parallel", 1) ?? 3;
  const retries = integer(values.retries, "retries", 0) ?? 5;
  const progress = new Progress({ quiet: values.quiet, verbose: values.verbose });
  const started = Date.now();

  const credentials = await credentialsFor(destination.origin.host, { flag: values.creds });
  const opened = await openSource(sourceText, {
    image: values.image,
    plainHttp: values["plain-http"],
    creds: values["src-creds"],
    log: (message) => progress.log(message),
    destination: { host: destination.origin.host, credentials },
  });
  try {
    const { source } = opened;
    // Pushing from another repository of the same registry: mount instead of copying bytes.
    const sameRegistry = opened.registry && opened.registry.client.origin.origin === destination.origin.origin;
    const from = values.from ?? (sameRegistry ? opened.registry?.repository : undefined);
    const scopes = [`repository:${destination.repository}:pull,push`, ...(from ? [`repository:${from}:pull`] : [])];
    const client = new RegistryClient(destination.origin, credentials, scopes);

    const root = await source.root();
    const { children, blobs } = await walk(source, root);
    const total = blobs.reduce((sum, blob) => sum + blob.size, 0);
    progress.log(`pushing ${source.description} to ${formatReference(destination)}: ${blobs.length} blobs, ${formatBytes(total)}`);

    const target: UploadTarget = {
      client,
      repository: destination.repository,
      chunkSize,
      from,
      state: new UploadState(values["no-state"] ? null : (values.state ?? defaultStateFile())),
      retries,
    };
    const results = await inParallel(blobs, parallel, async (blob) => {
      const label = shortDigest(blob.digest);
      const result = await pushBlob(target, source, blob, {
        item: () => progress.item(label, blob.size),
        log: (message) => progress.log(message),
      });
      if (result.outcome === "exists") progress.log(`${label}: already in ${destination.repository}`);
      if (result.outcome === "mounted") progress.log(`${label}: mounted from ${from}`);
      return result;
    });

    for (const child of children) await putManifest(client, destination.repository, child.digest, child);
    // As docker: no tag means "latest".
    const reference = destination.tag ?? destination.digest ?? "latest";
    if (destination.digest && destination.digest !== root.digest) {
      throw new Error(`the image is ${root.digest}, not ${destination.digest} as the destination says`);
    }
    await putManifest(client, destination.repository, reference, root);
    progress.finish();

    const seconds = (Date.now() - started) / 1000;
    const sent = results.reduce((sum, result) => sum + result.sent, 0);
    const pushed = `${destination.origin.host}/${destination.repository}@${root.digest}`;
    progress.log(`pushed ${pushed}${destination.digest ? "" : ` as ${reference}`}: sent ${formatBytes(sent)} in ${seconds.toFixed(1)} s`);
    if (values.json) {
      const tag = destination.digest ? null : reference;
      const summary = { reference: pushed, digest: root.digest, mediaType: root.mediaType, tag, bytesSent: sent, seconds, blobs: results };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      process.stdout.write(`${pushed}\n`);
    }
  } finally {
    progress.finish();
    await opened.close();
  }
}

export class UsageError extends Error {}
