import { z } from "zod";
import { RegistryError } from "../errors";
import type { After } from "../storage/search-records";

// A page cursor: the sort key and name of the last item shown, opaque to clients (base64url of a JSON pair).
const Position = z.tuple([z.number().int(), z.string().max(300)]);

export function encodeCursor(after: After): string {
  return btoa(JSON.stringify([after.key, after.name])).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): After | null {
  if (cursor === undefined || cursor === "") return null;
  const invalid = () => new RegistryError("REQUEST_INVALID", { cursor: cursor.slice(0, 100) }, { message: "invalid cursor" });
  let json: unknown;
  try {
    json = JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    throw invalid();
  }
  const parsed = Position.safeParse(json);
  if (!parsed.success) throw invalid();
  return { key: parsed.data[0], name: parsed.data[1] };
}
