// JSON.parse takes any nesting, but SQLite's JSON functions (which read manifests' annotations and references) stop
// at a depth of 1000, and no manifest needs more than a handful of levels: deeper ones are refused before parsing.
export const MAX_JSON_DEPTH = 64;

/** Whether the JSON text nests objects and arrays deeper than `limit`; strings are skipped, escapes included. */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let at = 0; at < text.length; at++) {
    const char = text.charCodeAt(at);
    if (inString) {
      if (char === 0x5c) at++; // backslash: the next character is escaped
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) {
      if (++depth > limit) return true;
    } else if (char === 0x7d || char === 0x5d) depth--;
  }
  return false;
}
