import { RegistryError } from "../errors";

// How an upload refuses a request. Every refusal but a digest mismatch keeps the session: the Range header says what
// is stored, and the client resumes from there.

/** The Range header of an upload: the inclusive range received, "0-0" when nothing was (as distribution does). */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}

export function outOfOrder(offset: number, reason: string): RegistryError {
  return new RegistryError(
    "RANGE_INVALID",
    { offset, reason },
    { message: "chunk is out of order", headers: { Range: rangeHeader(offset) } },
  );
}

/** A body that ended before its declared length, or broke off: what arrived is kept, and the Range says how much. */
export function cutOff(offset: number, declared: number | undefined, received?: number): RegistryError {
  const length = declared === undefined ? "" : ` (declared ${declared} bytes${received === undefined ? "" : `, received ${received}`})`;
  return new RegistryError(
    "RANGE_INVALID",
    { offset, declared: declared ?? null, received: received ?? null },
    {
      message: `the request body ended early${length}: the upload keeps the bytes in the Range; resume from there`,
      headers: { Range: rangeHeader(offset) },
    },
  );
}

/** A request after the upload took all its bytes (it is being completed). */
export function alreadyComplete(size: number): RegistryError {
  return new RegistryError(
    "RANGE_INVALID",
    { offset: size },
    { message: "the upload has all its bytes: complete it with PUT ?digest=", headers: { Range: rangeHeader(size) } },
  );
}

export function tooLarge(limit: number): RegistryError {
  return new RegistryError(
    "REQUEST_TOO_LARGE",
    { limit },
    {
      message:
        `request body is larger than this registry accepts (${limit} bytes, MAX_BODY_BYTES): push through ` +
        "`npx edge-oci-registry relay --to <registry>` or with `npx edge-oci-registry push`, which upload in chunks " +
        "of at most that size (README: \"Pushing layers larger than Cloudflare's request limit\")",
    },
  );
}

/** R2 assembles at most maxParts parts: the blob would need more. */
export function partCapReached(offset: number, maxParts: number, partSize: number): RegistryError {
  return new RegistryError(
    "REQUEST_TOO_LARGE",
    { offset, maxParts, partSize, limit: maxParts * partSize },
    {
      message: `an upload holds at most ${maxParts} parts of ${partSize} bytes (${maxParts * partSize} bytes): this chunk would need part ${maxParts + 1}; the bytes stored are kept`,
      headers: { Range: rangeHeader(offset) },
    },
  );
}

export function mismatch(expected: string, actual: string): RegistryError {
  return new RegistryError("DIGEST_INVALID", { expected, actual });
}
