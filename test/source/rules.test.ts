import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src", import.meta.url));
const CLI = fileURLToPath(new URL("../../cli", import.meta.url));

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** Every line of src/ that matches, as "file:line: text". */
function occurrences(pattern: RegExp): string[] {
  return sources().flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .flatMap((line, index) => (pattern.test(line) ? [`${relative(SRC, file)}:${index + 1}: ${line.trim()}`] : [])),
  );
}

describe("path parameters are validated before anything looks them up", () => {
  it("reads c.req.param() only in routes/path.ts, or wrapped at once in a parse function", () => {
    const unparsed = occurrences(/c\.req\.param\(/).filter(
      (hit) => !hit.startsWith("routes/path.ts:") && !/parse[A-Z][A-Za-z]*\(c\.req\.param\(/.test(hit),
    );
    expect(unparsed).toEqual([]);
  });

  it("builds content cache keys in one function: no other code names the cache origin or opens caches", () => {
    expect(occurrences(/edge-cache\.registry\.internal/).filter((hit) => !hit.startsWith("cache/edge.ts:"))).toEqual([]);
    // The failed-login limiter keeps its own marks (keyed by hashes it makes, never by a request's path).
    const users = occurrences(/caches\.(default|open)/).filter((hit) => !hit.startsWith("cache/edge.ts:") && !hit.startsWith("storage/window-marks.ts:"));
    expect(users).toEqual([]);
  });
});

describe("the command-line tools share src/'s rules through modules Node loads as they are", () => {
  // Node's type stripping cannot resolve src's extensionless imports: a module cli/ imports must import nothing.
  it("imports, from cli/, only src/ modules that import nothing", () => {
    const shared = new Set(["grammar.ts", "manifests/media-types.ts"]);
    for (const file of sources(CLI)) {
      for (const [, path] of readFileSync(file, "utf8").matchAll(/from "((?:\.\.\/)+src\/[^"]+)"/g)) {
        shared.add(relative(SRC, resolve(dirname(file), path!)));
      }
    }
    const importing = [...shared].filter((file) =>
      /^\s*import\b|^\s*export\b[^;]*\bfrom\s*["']|\bimport\s*\(/m.test(readFileSync(join(SRC, file), "utf8")),
    );
    expect(importing).toEqual([]);
  });
});
