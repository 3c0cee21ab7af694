// The audit log's page in a real browser (Debian's Chromium driven by playwright-core) against `wrangler dev` with
// token authentication: hidden from anyone but the admin, reached by logging in with the admin token, filtered with
// its form, and paged with "Older events". Screenshots go to test-results/screenshots/.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../support/registry-fetch";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = resolve("test-results", "screenshots");
const { ADMIN_TOKEN, vars } = tokenAuth();

let registry: Registry;
let browser: Browser;
let ci: { id: string; token: string };
let reader: { id: string; token: string };

async function createToken(name: string, scopes: { repository: string; actions: string[] }[]) {
  const response = await fetch(`${registry.url}/admin/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, scopes }),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; token: string };
}

const basic = (token: string) => `Basic ${Buffer.from(`ci:${token}`).toString("base64")}`;

beforeAll(async () => {
  registry = await startRegistry({ vars });
  ci = await createToken("audit-ci", [{ repository: "team/*", actions: ["pull", "push", "delete"] }]);
  reader = await createToken("audit-reader", [{ repository: "team/*", actions: ["pull"] }]);
  const pusher = new RegistryClient(registry.url, basic(ci.token));
  // Four pushes of one tag: a push and then three pushes that each move it.
  for (let round = 0; round < 4; round++) await pusher.pushImage("team/app", "latest", { layers: [2_000], seed: `app-${round}` });
  await pusher.pushImage("team/tools", "v1", { layers: [1_000], seed: "tools" });
  // A refusal: the reader may not push.
  const refused = await fetch(`${registry.url}/v2/team/app/blobs/uploads/`, { method: "POST", headers: { Authorization: basic(reader.token) } });
  expect(refused.status).toBe(403);

  await mkdir(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  await registry?.stop();
});

async function screenshot(page: Page, name: string): Promise<void> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

const column = (page: Page, name: string) => page.locator(`#audit tbody td.${name}`).allTextContents();
const actions = (page: Page) => page.locator("#audit tbody tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-action")));

async function logIn(page: Page, secret: string, next: string): Promise<void> {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.locator("#token").fill(secret);
  await page.getByRole("button", { name: "Log in" }).click();
}

describe("the audit log page in Chromium", () => {
  it("is shown to the admin only, filters by action, actor and repository, and pages to older events", async () => {
    const context = await browser.newContext({ baseURL: registry.url, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();

    const hidden = await page.goto("/audit");
    expect(hidden?.status()).toBe(404);

    await logIn(page, ADMIN_TOKEN, "/audit");
    await page.waitForURL(/\/audit$/);
    expect(await page.locator("h1").textContent()).toBe("Audit log");
    expect(await page.locator("#audit-link").count()).toBe(1);
    const all = await actions(page);
    // Newest first: the admin's own login, the refusal, then the pushes (and the tokens' creation, oldest).
    expect(all.slice(0, 2)).toEqual(["login", "blob.upload"]);
    expect(all.filter((action) => action === "manifest.push")).toHaveLength(5);
    expect(all.filter((action) => action === "tag.move")).toHaveLength(3);
    expect(all.filter((action) => action === "token.create")).toHaveLength(2);
    expect(await page.locator("#audit tbody tr[data-action='blob.upload'] td.actor").textContent()).toBe(reader.id);
    await screenshot(page, "audit-all");

    // The form: tag moves only.
    await page.locator("#audit-filters select[name=action]").selectOption("tag.move");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/action=tag\.move/);
    expect(await actions(page)).toEqual(["tag.move", "tag.move", "tag.move"]);
    expect(new Set(await column(page, "actor"))).toEqual(new Set([ci.id]));
    expect(await column(page, "repository")).toEqual(["team/app", "team/app", "team/app"]);
    expect((await column(page, "detail")).every((detail) => detail.includes('"from":"sha256:') && detail.includes('"to":"sha256:'))).toBe(true);
    await screenshot(page, "audit-tag-moves");

    // The four pushes to team/app two at a time: two pages, the filters kept on the second, which is the last.
    await page.goto("/audit?action=manifest.push&repository=team%2Fapp&limit=2");
    const firstPage = await column(page, "target");
    expect(firstPage).toHaveLength(2);
    await page.locator("#audit-next").click();
    await page.waitForURL(/cursor=/);
    expect(await page.locator("#audit-filters input[name=repository]").inputValue()).toBe("team/app");
    expect(await page.locator("#audit-filters select[name=action]").inputValue()).toBe("manifest.push");
    const secondPage = await column(page, "target");
    expect(secondPage).toHaveLength(2);
    expect(secondPage.some((target) => firstPage.includes(target))).toBe(false);
    expect(await page.locator("#audit-next").count()).toBe(0);
    await screenshot(page, "audit-page-2");

    // The actor filter, typed in.
    await page.goto("/audit");
    await page.locator("#audit-filters input[name=actor]").fill(reader.id);
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/actor=/);
    expect(await actions(page)).toEqual(["blob.upload"]);
    expect(await page.locator("#audit tbody tr").first().getAttribute("data-result")).toBe("denied");
    await context.close();
  });

  it("is not there for an access token's session", async () => {
    const context = await browser.newContext({ baseURL: registry.url });
    const page = await context.newPage();
    await logIn(page, reader.token, "/");
    await page.waitForURL(/\/$/);
    expect(await page.locator("#audit-link").count()).toBe(0);
    const response = await page.goto("/audit");
    expect(response?.status()).toBe(404);
    expect(await page.locator("#audit").count()).toBe(0);
    await screenshot(page, "audit-not-for-members");
    await context.close();
  });
});
