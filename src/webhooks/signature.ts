// X-Registry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint's secret>. The
// timestamp is the delivery's (each retry signs anew), so a receiver rejects one older than a few minutes: a recorded
// delivery replayed later fails, and a duplicate within the window is caught by the event's id.
export const SIGNATURE_HEADER = "X-Registry-Signature";

const encoder = new TextEncoder();

async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(text)));
  return [...mac].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The signature header's value for a body sent at `timestamp` (unix seconds). */
export async function signatureOf(secret: string, timestamp: number, body: string): Promise<string> {
  return `t=${timestamp},v1=${await hmacHex(secret, `${timestamp}.${body}`)}`;
}
