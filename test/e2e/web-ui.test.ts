// The web UI in a real browser (Debian's Chromium driven by playwright-core) against `wrangler dev` with token
// authentication: search, a repository, a tag with its config, layers and attached SBOM, a multi-platform index,
// copying the pull command, logging in and out, and deleting a tag. Every page is saved as a screenshot in
// test-results/screenshots/ for a reviewer to look at.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type Pushed } from "../support/registry-fetch";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = resolve("test-results", "screenshots");
const { ADMIN_TOKEN, vars } = tokenAuth();

let registry: Registry;
let browser: Browser;
let token: string;
let tagged: Pushed;
let sbom: Pushed;

async function createToken(name: string, scopes: { repository: string; actions: string[] }[]): Promise<string> {
  const response = await fetch(`${registry.url}/admin/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, scopes }),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { token: string }).token;
}

beforeAll(async () => {
  registry = await startRegistry({ vars: { ...vars, PUBLIC_REPOSITORIES: "public/*" } });
  const admin = new RegistryClient(registry.url, `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}`);

  const description = "A tiny web server that says hello, for the registry demo";
  await admin.pushImage("public/webapp", "0.9", { layers: [40_000, 9_000], seed: "webapp-0.9", annotations: { "org.opencontainers.image.description": description } });
  tagged = await admin.pushImage("public/webapp", "1.0", {
    layers: [180_000, 52_000, 4_000],
    seed: "webapp-1.0",
    annotations: { "org.opencontainers.image.description": description, "org.opencontainers.image.version": "1.0.0" },
  });
  sbom = await admin.attach("public/webapp", tagged, "application/spdx+json", {
    name: "webapp.spdx.json",
    content: JSON.stringify({ spdxVersion: "SPDX-2.3", name: "webapp", packages: [{ name: "libc", versionInfo: "2.36" }] }),
  });
  await admin.attach("public/webapp", tagged, "application/vnd.dev.cosign.artifact.sig.v1+json", { name: "signature", content: "MEUCIQ-signature" });

  const amd64 = { os: "linux", architecture: "amd64" };
  const arm64 = { os: "linux", architecture: "arm64" };
  const images = [
    { ...(await admin.pushImage("public/multiarch", null, { layers: [120_000], seed: "multi-amd64", platform: amd64 })), platform: amd64 },
    { ...(await admin.pushImage("public/multiarch", null, { layers: [110_000], seed: "multi-arm64", platform: arm64 })), platform: arm64 },
  ];
  await admin.pushIndex("public/multiarch", "2.0", images, { "org.opencontainers.image.description": "One tag, two platforms" });

  await admin.pushImage("private/secret-app", "v1", { layers: [30_000], seed: "secret-v1", annotations: { "org.opencontainers.image.description": "Internal billing service" } });
  await admin.pushImage("private/secret-app", "old", { layers: [20_000], seed: "secret-old" });
  token = await createToken("web-ui-tester", [{ repository: "private/*", actions: ["pull", "delete"] }]);

  await mkdir(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  await registry?.stop();
});

async function newContext(options: { phone?: boolean } = {}): Promise<BrowserContext> {
  const context = await browser.newContext({
    baseURL: registry.url,
    viewport: options.phone ? { width: 375, height: 812 } : { width: 1200, height: 900 },
    deviceScaleFactor: options.phone ? 2 : 1,
    isMobile: options.phone ?? false,
    hasTouch: options.phone ?? false,
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: registry.url });
  return context;
}

async function screenshot(page: Page, name: string): Promise<void> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/** The page fits the viewport's width: nothing forces sideways scrolling on a phone (else: what sticks out). */
async function expectNoSidewaysScroll(page: Page): Promise<void> {
  const { overflow, wide } = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll("body *")]
      .filter((element) => element.getBoundingClientRect().right > width + 0.5)
      .map((element) => `${element.tagName.toLowerCase()} "${element.textContent?.slice(0, 40)}"`);
    return { overflow: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
  });
  expect(overflow, `wider than the screen: ${wide.join(", ")}`).toBeLessThanOrEqual(0);
}

const repositoryNames = (page: Page) => page.locator("#repositories .name").allTextContents();

describe("the web UI in Chromium", () => {
  it("searches, opens a repository and a tag, copies the pull command and lists the attached SBOM", async () => {
    const context = await newContext();
    const page = await context.newPage();

    await page.goto("/");
    expect(await repositoryNames(page)).toEqual(["public/multiarch", "public/webapp"]);
    await screenshot(page, "home-anonymous");

    await page.getByRole("searchbox", { name: "Search repositories" }).fill("hello");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\?q=hello/);
    expect(await repositoryNames(page)).toEqual(["public/webapp"]);
    await expect.poll(() => page.locator("#repositories").textContent()).toContain("description match");
    await screenshot(page, "search");

    await page.getByRole("link", { name: "public/webapp" }).click();
    await page.waitForURL(/\/r\/public\/webapp$/);
    expect(await page.locator("#tags .name").allTextContents()).toEqual(["1.0", "0.9"]);
    expect(await page.locator("#tags li[data-tag='1.0'] .badges").textContent()).toContain("SBOM");
    await screenshot(page, "repository");

    await page.locator("#tags").getByRole("link", { name: "1.0", exact: true }).click();
    await page.waitForURL(/\/r\/public\/webapp\/-\/tags\/1\.0$/);
    const pull = `docker pull ${registry.host}/public/webapp:1.0`;
    await expect.poll(() => page.locator("#pull code").first().textContent()).toBe(pull);
    const copy = page.locator("#pull button[data-copy]").first();
    await copy.click();
    await expect.poll(() => copy.textContent()).toBe("Copied");
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(pull);

    const layers = page.locator("#layers tbody tr");
    expect(await layers.count()).toBe(3);
    expect(await layers.first().textContent()).toContain("COPY step-1");
    const config = await page.locator("#config").textContent();
    expect(config).toContain("/usr/local/bin/server");
    expect(config).toContain("APP_NAME=public/webapp");
    expect(config).toContain("platform team");
    const sbomGroup = page.locator(".referrer-group[data-artifact-type='application/spdx+json']");
    expect(await sbomGroup.textContent()).toContain("SBOM");
    expect(await sbomGroup.textContent()).toContain(sbom.digest.slice(0, 19));
    expect(await page.locator(".referrer-group").count()).toBe(2);
    expect(await page.locator("#delete").count()).toBe(0);
    await screenshot(page, "tag");

    // The SBOM's own page: an artifact with its file, attached to the tag's manifest.
    await sbomGroup.getByRole("link").first().click();
    await page.waitForURL(/\/-\/manifests\/sha256:/);
    expect(await page.locator("#layers").textContent()).toContain("webapp.spdx.json");
    expect(await page.locator("#summary").textContent()).toContain(tagged.digest);
    await screenshot(page, "sbom");
    await context.close();
  });

  it("shows the platforms of an index and each platform's image", async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto("/r/public/multiarch");
    expect(await page.locator("#tags li[data-tag='2.0'] .badges").textContent()).toMatch(/linux\/amd64.*linux\/arm64/);
    await page.locator("#tags").getByRole("link", { name: "2.0" }).click();
    const rows = page.locator("#platforms tbody tr");
    expect(await rows.count()).toBe(2);
    expect(await rows.allTextContents()).toEqual([expect.stringContaining("linux/amd64"), expect.stringContaining("linux/arm64")]);
    await screenshot(page, "index");
    await rows.nth(1).getByRole("link").click();
    await page.waitForURL(/\/-\/manifests\/sha256:/);
    expect(await page.locator("#config").textContent()).toContain("linux/arm64");
    await screenshot(page, "index-platform");
    await context.close();
  });

  it("hides the private repository when logged out, shows it after logging in, deletes a tag after confirmation", async () => {
    const context = await newContext();
    const page = await context.newPage();

    await page.goto("/?q=secret");
    expect(await repositoryNames(page)).toEqual([]);
    const hidden = await page.goto("/r/private/secret-app");
    expect(hidden?.status()).toBe(404);
    await screenshot(page, "private-hidden");

    await page.getByRole("link", { name: "Log in to see private repositories" }).click();
    await page.locator("#token").fill("ocr_not_a_real_token");
    await page.getByRole("button", { name: "Log in" }).click();
    expect(await page.locator(".notice.error").textContent()).toContain("not valid");
    await page.locator("#token").fill(token);
    await screenshot(page, "login");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(/\/r\/private\/secret-app$/);
    expect(await page.locator(".user").textContent()).toContain("web-ui-tester");
    expect(await page.locator("#tags .name").allTextContents()).toEqual(["old", "v1"]);

    await page.goto("/");
    expect(await repositoryNames(page)).toEqual(["private/secret-app", "public/multiarch", "public/webapp"]);
    await screenshot(page, "home-logged-in");

    await page.goto("/r/private/secret-app/-/tags/old");
    await page.getByRole("link", { name: "Delete tag…" }).click();
    await page.waitForURL(/\/-\/tags\/old\/delete$/);
    await screenshot(page, "delete-confirm");
    await page.getByRole("button", { name: "Delete tag old" }).click();
    await page.waitForURL(/\/r\/private\/secret-app\?deleted=old$/);
    expect(await page.locator(".notice.ok").textContent()).toContain("Tag old was deleted");
    expect(await page.locator("#tags .name").allTextContents()).toEqual(["v1"]);
    await screenshot(page, "deleted");
    const gone = await fetch(`${registry.url}/v2/private/secret-app/manifests/old`, {
      method: "HEAD",
      headers: { Authorization: `Basic ${Buffer.from(`ci:${token}`).toString("base64")}` },
    });
    expect(gone.status).toBe(404);

    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/$/);
    expect(await repositoryNames(page)).toEqual(["public/multiarch", "public/webapp"]);
    expect((await context.cookies()).filter((cookie) => cookie.name === "registry_session")).toEqual([]);
    await context.close();
  });

  it("fits a phone's screen", async () => {
    const context = await newContext({ phone: true });
    const page = await context.newPage();
    for (const [path, name] of [
      ["/", "phone-home"],
      ["/r/public/webapp", "phone-repository"],
      ["/r/public/webapp/-/tags/1.0", "phone-tag"],
    ] as const) {
      await page.goto(path);
      await expectNoSidewaysScroll(page);
      await screenshot(page, name);
    }
    await context.close();
  });
});
