#!/usr/bin/env node
// The project's client-side commands, shipped as `npx edge-oci-registry`: `push` uploads images in chunks a
// registry behind Cloudflare's request-size limit accepts; `relay` lets unmodified clients (docker, podman,
// skopeo) do the same by re-cutting their uploads on the way through.
import { osvImport, OSV_IMPORT_USAGE } from "./osv-import.ts";
import { push, PUSH_USAGE, UsageError } from "./push.ts";
import { relay, RELAY_USAGE } from "./relay.ts";

const USAGE = `usage: edge-oci-registry <command> [options]

  push SOURCE DESTINATION   push an image from an OCI layout, a docker save tarball or a registry, in chunks
  relay --to URL            a local endpoint for docker/podman/skopeo that re-cuts large uploads for the registry
  osv-import SOURCE         import OSV records (an export zip or JSON) into the registry's vulnerability database

${PUSH_USAGE}
${RELAY_USAGE}
${OSV_IMPORT_USAGE}`;

const [command, ...args] = process.argv.slice(2);

try {
  if (command === "push") await push(args);
  else if (command === "relay") await relay(args);
  else if (command === "osv-import") await osvImport(args);
  else if (command === undefined || command === "help" || command === "--help" || command === "-h") process.stdout.write(USAGE);
  else throw new UsageError(`unknown command ${command}\n\n${USAGE}`);
} catch (error) {
  const failure = error as Error & { code?: string };
  if (failure instanceof UsageError || failure.code?.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`${failure.message.trimEnd()}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`edge-oci-registry ${command}: ${failure.message}\n`);
    process.exitCode = 1;
  }
  // Uploads still running in parallel stop here; what they sent is resumable from the saved state.
  process.exit();
}
