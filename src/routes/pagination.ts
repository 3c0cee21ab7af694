import { RegistryError } from "../errors";

// Without `n`, lists are still bounded; the Link header leads to the rest.
const MAX_PAGE = 1000;

export interface Page {
  limit: number;
  last: string | null;
}

export function parsePage(query: (name: string) => string | undefined): Page {
  const n = query("n");
  const last = query("last") ?? null;
  if (n === undefined) return { limit: MAX_PAGE, last };
  if (!/^\d{1,9}$/.test(n)) {
    throw new RegistryError("PAGINATION_NUMBER_INVALID", { n }, { message: "n must be a non-negative integer" });
  }
  return { limit: Math.min(Number(n), MAX_PAGE), last };
}

/** Builds the RFC 5988 Link header to the next page, when the page is full and more may follow. */
export function nextLink(path: string, page: Page, items: string[], hasMore: boolean): string | null {
  const last = items.at(-1);
  if (!hasMore || last === undefined) return null;
  const query = new URLSearchParams({ n: String(page.limit), last });
  return `<${path}?${query}>; rel="next"`;
}
