import { z } from "zod";
import { RepositoryPattern } from "../auth/scopes";
import { jsonList } from "../json-setting";

// WEBHOOKS: a JSON list of endpoints told of what happens in the registry (README: "Webhooks").
//   [{"name": "ci", "url": "https://ci.example.com/registry-events", "repositories": ["team/*"],
//     "actions": ["push", "delete"], "secretName": "WEBHOOK_CI_SECRET"}]
// Each delivery is signed with HMAC-SHA256 under the secret secretName names; that it is set is checked at startup.

export const WEBHOOK_ACTIONS = ["push", "delete", "pull"] as const;
export type WebhookAction = (typeof WEBHOOK_ACTIONS)[number];

export const WebhookEndpoint = z.strictObject({
  /** Names the endpoint in the admin API and in its queue messages: a message names the endpoint it is for. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and '-', at most 63"),
  url: z.url({ protocol: /^https?$/ }),
  /** Repository patterns (`*` for any run of characters, as in scopes); an event of any other repository is not sent. */
  repositories: z.array(RepositoryPattern).min(1),
  /** Pull events are many: only an endpoint that lists "pull" gets them. */
  actions: z.array(z.enum(WEBHOOK_ACTIONS)).min(1).default(["push", "delete"]),
  /**
   * The secret the deliveries are signed with. Only WEBHOOK_… names, so that no setting can make the registry sign
   * with (and so vouch for a guess at) one of its own secrets.
   */
  secretName: z.string().regex(/^WEBHOOK_[A-Z0-9_]+$/, "must name a secret whose name starts with WEBHOOK_ (e.g. WEBHOOK_CI_SECRET)"),
  /** How long one delivery may take, headers and body. */
  timeoutSeconds: z.number().positive().max(60).default(10),
});
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

export const Webhooks = jsonList(WebhookEndpoint)
  .refine((endpoints) => new Set(endpoints.map((endpoint) => endpoint.name)).size === endpoints.length, "two endpoints have the same name")
  .refine((endpoints) => endpoints.length <= 20, "at most 20 endpoints (a queue send takes at most 100 messages)");

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Why an endpoint's URL is refused: only https, or with WEBHOOKS_ALLOW_HTTP (tests), http on a loopback host. */
export function insecureEndpointProblem(url: string, allowHttp: boolean): string | null {
  const parsed = new URL(url);
  if (parsed.protocol === "https:") return null;
  if (allowHttp && LOOPBACK.has(parsed.hostname)) return null;
  return allowHttp
    ? "must be https, or http on a loopback host (127.0.0.1, localhost, [::1])"
    : "must be https (WEBHOOKS_ALLOW_HTTP=true allows a loopback http receiver for tests)";
}
