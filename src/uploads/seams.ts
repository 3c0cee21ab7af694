/**
 * Test seams, empty in production (as storage/blob-records.ts's interleavings). Every step of an upload that changes
 * something outside the request (R2, D1, the session's own storage) runs through step(), where a test's fault hook
 * may throw as the step begins (it fails before taking effect) or return a function run once the step took effect,
 * which may throw (its answer is lost). maxParts lowers R2's part cap so that it can be reached with a few small
 * parts. The Durable Object runs in the tests' isolate, so it sees what a test sets here.
 */
export const seams: { fault?: (step: Step) => (() => void) | void; maxParts?: number } = {};

export type Step =
  | "r2.createMultipart"
  | "r2.uploadPart"
  | "r2.complete"
  | "r2.put"
  | "d1.findStored"
  | "d1.link"
  | "d1.record"
  | "session.commit";

export async function step<T>(name: Step, call: () => Promise<T>): Promise<T> {
  const after = seams.fault?.(name);
  const result = await call();
  after?.();
  return result;
}
