import { WebhookRecords } from "../storage/webhook-records";
import type { WebhookEndpoint } from "./config";

/** GET /admin/webhooks: each configured endpoint with its delivery counts, last success and failure, and dead letters. */
export async function webhookStatus(db: D1Database, endpoints: WebhookEndpoint[]) {
  const status = await new WebhookRecords(db).status(endpoints.map((endpoint) => endpoint.name));
  return endpoints.map((endpoint) => {
    const url = new URL(endpoint.url);
    return {
      name: endpoint.name,
      // Without its query: a receiver may take a token there, and this answer may end up in a ticket.
      url: `${url.origin}${url.pathname}`,
      repositories: endpoint.repositories,
      actions: endpoint.actions,
      ...status.get(endpoint.name)!,
    };
  });
}
