// Events in the shape of Distribution's notifications (docs/notifications.md in distribution/distribution): an
// envelope {"events": [...]} of application/vnd.docker.distribution.events.v1+json, each event with its id,
// timestamp, action, target, request, actor and source. Nothing in them is a secret: the actor is a name (an access
// token's name, an OIDC subject, "admin" or "anonymous"), and no header of the request is copied but its user agent.
import type { WebhookAction } from "./config";

export const EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json";

export interface RegistryEvent {
  id: string;
  /** RFC 3339, as Distribution writes it. */
  timestamp: string;
  action: WebhookAction;
  target: {
    mediaType?: string;
    size?: number;
    digest?: string;
    /** Distribution's older name for size. */
    length?: number;
    repository: string;
    url?: string;
    tag?: string;
  };
  request: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name: string };
  source: { addr: string; instanceID: string };
}

/** What changed (or was read): the target of an event. */
export interface EventTarget {
  action: WebhookAction;
  repository: string;
  digest?: string;
  tag?: string;
  mediaType?: string;
  size?: number;
}

/** One queue message: an event for one endpoint, so that a failing endpoint is retried alone. */
export interface WebhookMessage {
  endpoint: string;
  event: RegistryEvent;
}

// Distribution's source.instanceID: which running instance sent it (here: an isolate). Made on first use: a Worker
// may not make random values in its global scope.
let instanceId: string | undefined;

/** A User-Agent is kept to this many characters (Docker's and containerd's are a few hundred at most). */
const MAX_USER_AGENT_CHARS = 1024;

/** The event of a request that changed (or read) `target`, once the change is committed. */
export function eventOf(request: Request, actor: string, target: EventTarget, at = new Date()): RegistryEvent {
  const url = new URL(request.url);
  const { action, repository, digest, tag, mediaType, size } = target;
  const reference = digest ?? tag;
  return {
    id: crypto.randomUUID(),
    timestamp: at.toISOString(),
    action,
    target: {
      ...(mediaType !== undefined && { mediaType }),
      ...(size !== undefined && { size, length: size }),
      ...(digest !== undefined && { digest }),
      repository,
      ...(reference !== undefined && { url: `${url.origin}/v2/${repository}/manifests/${reference}` }),
      ...(tag !== undefined && { tag }),
    },
    // The client's headers are cut short: a message over the queue's 128 KB is refused, and the event lost.
    request: {
      id: (request.headers.get("cf-ray") ?? crypto.randomUUID()).slice(0, 64),
      addr: (request.headers.get("cf-connecting-ip") ?? "").slice(0, 45),
      host: url.host,
      method: request.method,
      useragent: (request.headers.get("user-agent") ?? "").slice(0, MAX_USER_AGENT_CHARS),
    },
    actor: { name: actor },
    source: { addr: url.host, instanceID: (instanceId ??= crypto.randomUUID()) },
  };
}
