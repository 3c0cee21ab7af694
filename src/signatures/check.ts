// What checking one signature concludes.

export type SignatureFormat = "cosign" | "notation";

export type Check =
  | { ok: true; signer: string; recheckAt?: number }
  | { ok: false; reason: string; recheckAt?: number };

export const failed = (reason: string, recheckAt?: number): Check => ({ ok: false, reason, ...(recheckAt !== undefined && { recheckAt }) });

/** Standard base64 (cosign's annotation, JWS's x5c) or base64url (JWS's other parts) as bytes, or null. */
export function decodeBase64(text: string, url = false): Uint8Array | null {
  const pattern = url ? /^[A-Za-z0-9_-]*$/ : /^[A-Za-z0-9+/]*={0,2}$/;
  if (!pattern.test(text)) return null;
  const standard = url ? text.replaceAll("-", "+").replaceAll("_", "/") : text.replace(/=+$/, "");
  if (standard.length % 4 === 1) return null;
  try {
    return Uint8Array.from(atob(standard + "=".repeat((4 - (standard.length % 4)) % 4)), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
