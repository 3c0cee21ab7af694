import { z } from "zod";

/** A setting holding a JSON list (MIRRORS, RETENTION): a string var, parsed, each item checked by `item`. */
export function jsonList<T extends z.ZodType>(item: T) {
  return z
    .string()
    .default("[]")
    .transform((text, context) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        context.addIssue({ code: "custom", message: "not JSON" });
        return z.NEVER;
      }
    })
    .pipe(z.array(item));
}

/** A regular expression's source, in a setting: refused at startup when it does not compile. */
export const RegularExpression = z.string().refine((source) => {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}, "not a regular expression");
