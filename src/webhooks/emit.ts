// The producer: after a change has committed (or a pull was answered), one queue message per endpoint that wants the
// event, sent after the response (waitUntil). The change stands whatever happens to the send: a send that fails is
// logged and that event is lost (events are queued at most once per request, and delivered at least once from the
// queue). Without a matching endpoint nothing is sent, so webhooks cost nothing until they are configured.
import type { Context, MiddlewareHandler } from "hono";
import { patternMatches } from "../auth/scopes";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import type { WebhookAction, WebhookEndpoint } from "./config";
import { eventOf, type EventTarget, type WebhookMessage } from "./events";

/** The endpoints that want an action on a repository. */
export function endpointsFor(endpoints: WebhookEndpoint[], action: WebhookAction, repository: string): WebhookEndpoint[] {
  return endpoints.filter(
    (endpoint) => endpoint.actions.includes(action) && endpoint.repositories.some((pattern) => patternMatches(pattern, repository)),
  );
}

/** Queues the event of `target` for every endpoint that wants it, after the response. */
export function notify(c: Context<AppEnv>, target: EventTarget): void {
  const endpoints = endpointsFor(c.var.registry.config.WEBHOOKS, target.action, target.repository);
  // configOf refuses WEBHOOKS without the EVENTS binding.
  if (endpoints.length === 0 || !c.env.EVENTS) return;
  const event = eventOf(c.req.raw, c.var.access?.subject ?? "anonymous", target);
  const messages: MessageSendRequest<WebhookMessage>[] = endpoints.map((endpoint) => ({ body: { endpoint: endpoint.name, event }, contentType: "json" }));
  c.executionCtx.waitUntil(
    c.env.EVENTS.sendBatch(messages).catch((error) =>
      console.error(JSON.stringify({ event: "webhook-event-not-queued", action: target.action, repository: target.repository, eventId: event.id, error: String(error) })),
    ),
  );
}

/** A pull event for each manifest GET answered 200, whoever answered it (the handler, or the edge cache before it). */
export const notifiesPulls: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.req.method !== "GET" || c.res.status !== 200) return;
  const digest = c.res.headers.get("Docker-Content-Digest");
  if (!digest) return;
  const { repository, reference } = pathOf(c);
  const size = Number(c.res.headers.get("Content-Length"));
  notify(c, {
    action: "pull",
    repository,
    digest,
    ...(reference && "tag" in reference && { tag: reference.tag }),
    ...(c.res.headers.get("Content-Type") && { mediaType: c.res.headers.get("Content-Type")! }),
    ...(Number.isInteger(size) && size > 0 && { size }),
  });
};
