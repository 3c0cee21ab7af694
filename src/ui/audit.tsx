import { AUDIT_ACTIONS } from "../audit/events";
import type { AuditEventView } from "../audit/log";
import { shortDigest } from "./format";
import { Notice } from "./layout";

/** The filters as the visitor typed them (shown back in the form, and carried to the next page). */
export interface AuditFilters {
  action: string;
  repository: string;
  actor: string;
  since: string;
  until: string;
  /** Events per page (none: the API's default). */
  limit: string;
}

const short = (text: string | null) => (text === null ? "—" : text.startsWith("sha256:") ? shortDigest(text) : text);

// The admin's view of the audit log (README: "Audit log"): the filters of GET /admin/audit, newest first, a page at a time.
export function AuditPage(props: { filters: AuditFilters; events: AuditEventView[]; next: string | null; error: string | null; paged: boolean }) {
  const { filters } = props;
  const nextQuery = props.next
    ? new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, value]) => value !== "")), cursor: props.next })
    : null;
  return (
    <>
      <h1>Audit log</h1>
      <p class="lead">
        Pushes, tag moves, deletes, access tokens, logins, refusals and the garbage collector's deletions, newest first. Times are UTC.
      </p>
      {props.error && <Notice tone="error">{props.error}</Notice>}
      <form class="card filters" method="get" action="/audit" id="audit-filters">
        <label>
          Action
          <select name="action">
            <option value="">any</option>
            {AUDIT_ACTIONS.map((action) => (
              <option value={action} selected={filters.action === action}>
                {action}
              </option>
            ))}
          </select>
        </label>
        <label>
          Repository
          <input type="text" name="repository" value={filters.repository} placeholder="team/app" />
        </label>
        <label>
          Actor
          <input type="text" name="actor" value={filters.actor} placeholder="token id, admin, oidc:…" />
        </label>
        <label>
          Since
          <input type="text" name="since" value={filters.since} placeholder="2026-05-01T00:00" />
        </label>
        <label>
          Until
          <input type="text" name="until" value={filters.until} placeholder="2026-05-31T23:59" />
        </label>
        {filters.limit && <input type="hidden" name="limit" value={filters.limit} />}
        <div class="actions">
          <button class="primary" type="submit">
            Filter
          </button>
          <a href="/audit">Clear</a>
        </div>
      </form>
      <section class="card flush">
        {props.events.length === 0 ? (
          <p class="empty">{props.paged ? "No older events." : "No events match."}</p>
        ) : (
          <div class="scroll">
            <table id="audit">
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Action</th>
                  <th>Result</th>
                  <th>Actor</th>
                  <th>Client</th>
                  <th>Repository</th>
                  <th>Target</th>
                  <th>Detail</th>
                </tr>
              </thead>
              <tbody>
                {props.events.map((event) => (
                  <tr data-id={String(event.id)} data-action={event.action} data-result={event.result}>
                    <td class="nowrap">
                      <time datetime={event.at}>{event.at.replace("T", " ").slice(0, 19)}</time>
                    </td>
                    <td>{event.action}</td>
                    <td>
                      <span class={`badge ${event.result === "ok" ? "" : "result-bad"}`}>{event.result}</span>
                    </td>
                    <td class="break actor">{event.actor}</td>
                    <td>{event.client ?? "—"}</td>
                    <td class="break repository">{event.repository ?? "—"}</td>
                    <td class="break target" title={event.target ?? ""}>
                      <code>{short(event.target)}</code>
                    </td>
                    <td class="break detail">{event.detail ? <code>{JSON.stringify(event.detail)}</code> : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {nextQuery && (
          <div class="pager">
            <a class="button" id="audit-next" href={`/audit?${nextQuery}`}>
              Older events
            </a>
          </div>
        )}
      </section>
    </>
  );
}
