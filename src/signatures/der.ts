// A minimal DER reader (ITU-T X.690) for the few structures signature verification needs: certificates, public keys
// and ECDSA signatures. Definite lengths only, every length checked against its parent, nothing past the end read.

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DerError";
  }
}

/** One TLV: its tag byte, the whole encoding (`raw`) and its contents. */
export interface Node {
  tag: number;
  raw: Uint8Array;
  contents: Uint8Array;
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** The TLV at `offset` of `bytes`. */
export function readNode(bytes: Uint8Array, offset = 0): Node {
  if (offset + 2 > bytes.length) throw new DerError("truncated");
  const tag = bytes[offset]!;
  // High tag numbers (0x1f) never occur in the structures read here.
  if ((tag & 0x1f) === 0x1f) throw new DerError("unsupported tag");
  let length = bytes[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw new DerError("unsupported length");
    if (offset + 2 + octets > bytes.length) throw new DerError("truncated");
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + bytes[offset + 2 + i]!;
    // DER: the shortest form, always.
    if (length < 0x80 || bytes[offset + 2] === 0) throw new DerError("length not minimally encoded");
    header += octets;
  }
  const end = offset + header + length;
  if (end > bytes.length) throw new DerError("truncated");
  return { tag, raw: bytes.subarray(offset, end), contents: bytes.subarray(offset + header, end) };
}

/** Parses a whole encoding: exactly one TLV, nothing after it. */
export function parseDer(bytes: Uint8Array): Node {
  const node = readNode(bytes);
  if (node.raw.length !== bytes.length) throw new DerError("trailing bytes");
  return node;
}

/** The TLVs inside a constructed node. */
export function children(node: Node): Node[] {
  if (!(node.tag & 0x20)) throw new DerError("not a constructed value");
  const found: Node[] = [];
  for (let at = 0; at < node.contents.length; ) {
    const child = readNode(node.contents, at);
    found.push(child);
    at += child.raw.length;
  }
  return found;
}

export function expect(node: Node | undefined, tag: number, what: string): Node {
  if (!node || node.tag !== tag) throw new DerError(`expected ${what}`);
  return node;
}

export function oidOf(node: Node): string {
  expect(node, TAG.oid, "an object identifier");
  const bytes = node.contents;
  if (bytes.length === 0) throw new DerError("empty object identifier");
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError("object identifier too large");
    if (!(byte & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  if (bytes[bytes.length - 1]! & 0x80) throw new DerError("truncated object identifier");
  const first = parts.shift()!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join(".");
}

/** An INTEGER's magnitude (the sign byte of a positive value dropped); negative values are refused. */
export function unsignedInteger(node: Node): Uint8Array {
  expect(node, TAG.integer, "an integer");
  const bytes = node.contents;
  if (bytes.length === 0 || bytes[0]! & 0x80) throw new DerError("not a positive integer");
  if (bytes.length > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) throw new DerError("integer not minimally encoded");
  return bytes[0] === 0 && bytes.length > 1 ? bytes.subarray(1) : bytes;
}

export function smallInteger(node: Node): number {
  const bytes = unsignedInteger(node);
  if (bytes.length > 4) throw new DerError("integer too large");
  return bytes.reduce((value, byte) => value * 256 + byte, 0);
}

/** A BIT STRING's bytes (whole bytes only: keys and signatures) or, with `allowUnused`, its bits as given. */
export function bitString(node: Node, allowUnused = false): { bytes: Uint8Array; unused: number } {
  expect(node, TAG.bitString, "a bit string");
  const unused = node.contents[0];
  if (unused === undefined || unused > 7 || (unused > 0 && !allowUnused)) throw new DerError("bad bit string");
  return { bytes: node.contents.subarray(1), unused };
}

export function booleanOf(node: Node): boolean {
  expect(node, TAG.boolean, "a boolean");
  if (node.contents.length !== 1) throw new DerError("bad boolean");
  return node.contents[0] !== 0;
}

/** UTCTime or GeneralizedTime (RFC 5280 4.1.2.5: seconds, Zulu), as epoch milliseconds. */
export function timeOf(node: Node): number {
  const text = new TextDecoder().decode(node.contents);
  let match: RegExpMatchArray | null;
  let year: number;
  if (node.tag === TAG.utcTime && (match = text.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    const yy = Number(match[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === TAG.generalizedTime && (match = text.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    year = Number(match[1]);
  } else {
    throw new DerError("bad time");
  }
  const [, , month, day, hour, minute, second] = match.map(Number) as number[];
  return Date.UTC(year, month! - 1, day!, hour!, minute!, second!);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}
