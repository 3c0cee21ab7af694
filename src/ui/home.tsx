import type { Page, RepositoryHit } from "../search/search";
import { timeAgo, isoTime } from "./format";

const MATCH_LABELS = { exact: "name", prefix: "name", substring: "name", description: "description" } as const;

export function HomePage(props: { query: string; results: Page<RepositoryHit>; publicOnly: boolean }) {
  const { query, results } = props;
  return (
    <>
      <h1>{query ? `Results for “${query}”` : "Repositories"}</h1>
      <p class="lead">
        {props.publicOnly
          ? "Public repositories. Log in with an access token to see the private ones it may pull."
          : query
            ? "Repositories whose name or description contains your search, best matches first."
            : "Every repository you may pull. Search by name or by description."}
      </p>
      <section class="card flush">
        {results.items.length === 0 ? (
          <p class="empty">{query ? `No repository matches “${query}”.` : "No repositories yet. Push an image to get started."}</p>
        ) : (
          <ul class="rows" id="repositories">
            {results.items.map((hit) => (
              <li>
                <div class="grow">
                  <a class="name" href={`/r/${hit.name}`}>
                    {hit.name}
                  </a>
                  {hit.match && (
                    <span class="badges">
                      <span class="badge" title={`matched by ${hit.match}`}>
                        {MATCH_LABELS[hit.match]} match
                      </span>
                    </span>
                  )}
                  {hit.description && <p class="desc">{hit.description}</p>}
                  <div class="meta">
                    {hit.latest ? (
                      <>
                        <span>
                          latest <code>{hit.latest.tag}</code>
                        </span>
                        <span title={isoTime(hit.latest.pushedAt)}>pushed {timeAgo(hit.latest.pushedAt)}</span>
                      </>
                    ) : null}
                    <span>
                      {hit.tagCount} tag{hit.tagCount === 1 ? "" : "s"}
                    </span>
                  </div>
                </div>
              </li>
            ))}
          </ul>
        )}
        {results.next && (
          <div class="pager">
            <a class="button" href={`/?${new URLSearchParams({ q: query, cursor: results.next })}`}>
              More results
            </a>
          </div>
        )}
      </section>
    </>
  );
}
