import type { Context } from "hono";
import { html, raw } from "hono/html";
import type { Child } from "hono/jsx";
import type { Access } from "../auth/access";
import type { AppEnv } from "../context";
import { FAVICON, SCRIPT, STYLE } from "./assets";
import { artifactKind } from "./format";
import { isAdmin } from "./session";

interface PageOptions {
  title: string;
  /** The search box's text. */
  query?: string;
  status?: 200 | 400 | 401 | 403 | 404 | 413 | 429 | 500;
}

/**
 * Answers with a whole page. Pages are per visitor (never cached), allow only this page's own inline style and
 * script (CSP nonce), and may not be framed.
 */
export function page(c: Context<AppEnv>, options: PageOptions, body: Child) {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  c.header(
    "Content-Security-Policy",
    `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  c.header("Cache-Control", "no-store");
  c.header("Referrer-Policy", "same-origin");
  c.header("X-Content-Type-Options", "nosniff");
  const host = new URL(c.req.url).host;
  return c.html(
    html`<!doctype html>${(
        <html lang="en">
          <head>
            <meta charset="utf-8" />
            <meta name="viewport" content="width=device-width, initial-scale=1" />
            <title>{`${options.title} · ${host}`}</title>
            <link rel="icon" href={FAVICON} />
            <style nonce={nonce}>{raw(STYLE)}</style>
          </head>
          <body>
            <Header host={host} access={c.var.access} query={options.query ?? ""} path={c.req.path} />
            <main>{body}</main>
            <script nonce={nonce}>{raw(SCRIPT)}</script>
          </body>
        </html>
      )}`,
    options.status ?? 200,
  );
}

function Header(props: { host: string; access: Access; query: string; path: string }) {
  const { access } = props;
  return (
    <header class="top">
      <div class="bar">
        <a class="brand" href="/">
          <img src={FAVICON} width="24" height="24" alt="" />
          <span>{props.host}</span>
        </a>
        <form class="search" method="get" action="/" role="search">
          <input type="search" name="q" value={props.query} placeholder="Search repositories" aria-label="Search repositories" />
        </form>
        <div class="user">
          {access.via === "open" ? (
            <span class="badge" title="AUTH_MODE=open: anyone may push and delete">open registry</span>
          ) : access.via === "none" ? (
            <a class="button small" href={`/login?next=${encodeURIComponent(props.path)}`}>
              Log in
            </a>
          ) : (
            <>
              {isAdmin(access) && (
                <a class="button small" href="/audit" id="audit-link">
                  Audit log
                </a>
              )}
              <span class="hide-sm">
                Signed in as <strong>{access.subject}</strong>
              </span>
              <form class="inline" method="post" action="/logout">
                <button class="small" type="submit">
                  Log out
                </button>
              </form>
            </>
          )}
        </div>
      </div>
    </header>
  );
}

/** A command with a button that copies it. */
export function Pull(props: { command: string; label?: string }) {
  return (
    <div class="pull">
      <code>{props.command}</code>
      <CopyButton text={props.command} label={props.label ?? "Copy"} />
    </div>
  );
}

export function CopyButton(props: { text: string; label: string; title?: string }) {
  return (
    <button type="button" class="small" data-copy={props.text} data-label={props.label} title={props.title ?? props.text}>
      {props.label}
    </button>
  );
}

/** A badge naming an artifact type people know (SBOM, signature, ...), coloured by kind. */
export function ArtifactBadge(props: { artifactType: string; count?: number }) {
  const kind = artifactKind(props.artifactType);
  return (
    <span class={`badge ${kind.tone}`} title={props.artifactType}>
      {kind.label}
      {props.count !== undefined && props.count > 1 ? ` ×${props.count}` : ""}
    </span>
  );
}

export function Notice(props: { tone?: "ok" | "error"; children?: Child }) {
  return <div class={`notice ${props.tone ?? ""}`}>{props.children}</div>;
}

export function ErrorPage(props: { title: string; message: string; loginHint: boolean; path: string }) {
  return (
    <div class="card">
      <h1>{props.title}</h1>
      <p class="lead">{props.message}</p>
      <div class="actions">
        <a class="button" href="/">
          Back to repositories
        </a>
        {props.loginHint && (
          <a class="button primary" href={`/login?next=${encodeURIComponent(props.path)}`}>
            Log in to see private repositories
          </a>
        )}
      </div>
    </div>
  );
}
