// The queue consumer: delivers each message (one event for one endpoint) with a signed POST, retries a failed one
// later with exponential backoff (the queue moves it to the dead-letter queue after max_retries, wrangler.toml), and
// records each endpoint's status in D1 once per batch. Delivery is at least once: a receiver that took an event but
// answered late, or a batch cut short, gets it again, with the same event id.
import { configOf, secretOf, type Config, type Env } from "../config";
import { WebhookRecords, type DeliveryOutcome } from "../storage/webhook-records";
import type { WebhookEndpoint } from "./config";
import { EVENTS_MEDIA_TYPE, type WebhookMessage } from "./events";
import { SIGNATURE_HEADER, signatureOf } from "./signature";

/** The longest wait before a retry (the queue allows 12 hours). */
export const MAX_RETRY_DELAY_SECONDS = 3600;

/** The wait before the next attempt, after `attempts` failed ones: base, 2 x base, 4 x base, ... at most an hour. */
export function retryDelaySeconds(attempts: number, baseSeconds: number): number {
  return Math.min(baseSeconds * 2 ** Math.max(0, attempts - 1), MAX_RETRY_DELAY_SECONDS);
}

/** The dead-letter queue's batches come to the same handler; its name is the events queue's with "-dlq" (wrangler.toml). */
export function isDeadLetterQueue(queue: string): boolean {
  return queue.endsWith("-dlq");
}

/** The Worker's queue handler, for both the events queue and its dead-letter queue. */
export async function handleWebhookBatch(batch: MessageBatch<WebhookMessage>, env: Env): Promise<void> {
  const records = new WebhookRecords(env.DB);
  if (isDeadLetterQueue(batch.queue)) {
    // Needs no configuration, so a misconfigured Worker still records what it gave up on. Failing here leaves the
    // batch in the dead-letter queue for another try.
    await records.deadLettered(
      batch.messages.map(({ body, timestamp }) => ({
        endpoint: body.endpoint,
        eventId: body.event.id,
        action: body.event.action,
        repository: body.event.target.repository,
        event: JSON.stringify(body.event),
        queuedAt: timestamp.getTime(),
      })),
    );
    for (const message of batch.messages) {
      console.error(JSON.stringify({ event: "webhook-dead-lettered", endpoint: message.body.endpoint, eventId: message.body.event.id }));
    }
    batch.ackAll();
    return;
  }
  const config = configOf(env);
  const outcomes = await Promise.all(batch.messages.map((message) => deliverOne(env, config, message)));
  const attempted = outcomes.filter((outcome): outcome is DeliveryOutcome => outcome !== null);
  // Status is best effort: a failed write must not send an event again that was delivered.
  await records.record(attempted).catch((error) => console.error(JSON.stringify({ event: "webhook-status-not-written", error: String(error) })));
}

/** Delivers one message and acks or retries it; returns what happened, or null when there is nothing to deliver to. */
async function deliverOne(env: Env, config: Config, message: Message<WebhookMessage>): Promise<DeliveryOutcome | null> {
  const endpoint = config.WEBHOOKS.find((candidate) => candidate.name === message.body.endpoint);
  if (!endpoint) {
    // Removed from WEBHOOKS since the event was queued.
    console.error(JSON.stringify({ event: "webhook-endpoint-gone", endpoint: message.body.endpoint, eventId: message.body.event.id }));
    message.ack();
    return null;
  }
  const outcome = await post(endpoint, secretOf(env, endpoint.secretName) ?? "", message);
  if (outcome.ok) {
    message.ack();
  } else {
    const delaySeconds = retryDelaySeconds(message.attempts, config.WEBHOOKS_RETRY_SECONDS);
    console.error(
      JSON.stringify({ event: "webhook-delivery-failed", endpoint: endpoint.name, eventId: message.body.event.id, attempts: message.attempts, status: outcome.status, error: outcome.error, retryInSeconds: delaySeconds }),
    );
    message.retry({ delaySeconds });
  }
  return outcome;
}

async function post(endpoint: WebhookEndpoint, secret: string, message: Message<WebhookMessage>): Promise<DeliveryOutcome> {
  const body = JSON.stringify({ events: [message.body.event] });
  const timestamp = Math.floor(Date.now() / 1000);
  const failed = (status: number | null, error: string): DeliveryOutcome => ({ endpoint: endpoint.name, ok: false, status, error, at: Date.now() });
  try {
    const response = await fetch(endpoint.url, {
      method: "POST",
      headers: {
        "Content-Type": EVENTS_MEDIA_TYPE,
        "User-Agent": "edge-oci-registry-webhooks",
        [SIGNATURE_HEADER]: await signatureOf(secret, timestamp, body),
        "X-Registry-Event-Id": message.body.event.id,
        "X-Registry-Delivery-Attempt": String(message.attempts),
      },
      body,
      // A signed event goes where it was configured to, never where a redirect points.
      redirect: "manual",
      signal: AbortSignal.timeout(endpoint.timeoutSeconds * 1000),
    });
    await response.body?.cancel();
    if (response.status >= 200 && response.status < 300) return { endpoint: endpoint.name, ok: true, status: response.status, error: null, at: Date.now() };
    return failed(response.status, `HTTP ${response.status}`);
  } catch (error) {
    const timedOut = error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError");
    return failed(null, timedOut ? `no answer within ${endpoint.timeoutSeconds} s` : String(error).slice(0, 300));
  }
}
