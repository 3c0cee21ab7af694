import { RegistryError } from "./errors";

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * Parses a single `Range: bytes=…` request header against a blob's size. Returns null to serve the whole blob
 * (no header, or a form we do not honour, which RFC 9110 allows us to ignore); throws 416 when unsatisfiable.
 */
export function parseRange(header: string | null, size: number): ByteRange | null {
  if (header === null || size === 0) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return null;
  const [, first, last] = match;
  let start: number;
  let end: number;
  if (first === "") {
    start = Math.max(size - Number(last), 0);
    end = size - 1;
    if (Number(last) === 0) throw unsatisfiable(size);
  } else {
    start = Number(first);
    end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
    if (start >= size || Number(last === "" ? start : last) < start) throw unsatisfiable(size);
  }
  return { offset: start, length: end - start + 1 };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError(
    "RANGE_INVALID",
    { size },
    { message: "requested range not satisfiable", headers: { "Content-Range": `bytes */${size}` } },
  );
}

/** An upload chunk's `Content-Range: <start>-<end>` (inclusive; "bytes " prefix tolerated). */
export function parseContentRange(header: string | null): { start: number; length: number } | null {
  if (header === null) return null;
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) {
    throw new RegistryError(
      "RANGE_INVALID",
      { contentRange: header.slice(0, 100) },
      { message: "malformed Content-Range" },
    );
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) {
    throw new RegistryError("RANGE_INVALID", { contentRange: header }, { message: "empty Content-Range" });
  }
  return { start, length: end - start + 1 };
}
