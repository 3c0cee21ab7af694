// Debian version ordering, as dpkg compares versions (deb-version(7)): [epoch:]upstream[-revision], each part compared
// with verrevcmp: runs of non-digits character by character ('~' before everything, even the end; letters before
// other characters), then runs of digits as numbers.

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

// dpkg's own check: an optional numeric epoch, an upstream that starts with a digit, and only these characters.
const DPKG = /^(?:(\d{1,9}):)?([0-9][A-Za-z0-9.+~-]*?)(?:-([A-Za-z0-9.+~]+))?$/;

export function parseDpkgVersion(text: string): DpkgVersion | null {
  const match = DPKG.exec(text.trim());
  if (!match) return null;
  const upstream = match[2]!;
  // A hyphen in the upstream part only with a revision after it.
  if (match[3] === undefined && upstream.includes("-")) return null;
  return { epoch: Number(match[1] ?? 0), upstream, revision: match[3] ?? "" };
}

export function compareDpkgVersions(a: DpkgVersion, b: DpkgVersion): number {
  return Math.sign(a.epoch - b.epoch) || verrevcmp(a.upstream, b.upstream) || verrevcmp(a.revision, b.revision);
}

function order(code: number): number {
  if (code >= 48 && code <= 57) return 0; // digit
  if ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) return code; // letter
  if (code === 126) return -1; // '~'
  return code + 256;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let difference = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = i < a.length ? order(a.charCodeAt(i)) : 0;
      const bc = j < b.length ? order(b.charCodeAt(j)) : 0;
      if (ac !== bc) return Math.sign(ac - bc);
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (i < a.length && isDigit(a.charCodeAt(i)) && j < b.length && isDigit(b.charCodeAt(j))) {
      if (difference === 0) difference = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}
