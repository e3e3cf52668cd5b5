// The dashboard in a real headless Chromium, against a real `weft serve`
// that tests/tests/dashboard.rs has filled with a known workload. It checks
// what a person would look at and do, and writes a screenshot of each page.
//
// Environment: WEFT_URL (the server), WEFT_SHOTS (where screenshots go),
// WEFT_CHROMIUM (the browser), WEFT_PLAYWRIGHT (playwright-core's entry),
// WEFT_CASE (JSON: the ids and counts the workload made).

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.WEFT_URL;
const shots = process.env.WEFT_SHOTS;
const kase = JSON.parse(process.env.WEFT_CASE);
const { chromium } = await import(process.env.WEFT_PLAYWRIGHT);
mkdirSync(shots, { recursive: true });

const api = async (path, init) => {
  const r = await fetch(base + path, init);
  const text = await r.text();
  return { status: r.status, body: text, json: () => JSON.parse(text) };
};

const browser = await chromium.launch({
  executablePath: process.env.WEFT_CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  // A refused form answers 422 with the page and the reason: expected.
  if (m.type() === "error" && !m.text().includes("status of 422")) {
    problems.push(`console error: ${m.text()}`);
  }
});
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const step = (name) => console.log(`- ${name}`);

// Overview: the counts on the cards are the store's (the gauges /metrics
// reads from the store when scraped).
step("overview counts match the store");
await page.goto(base + "/");
const metrics = (await api("/metrics")).body;
const gauge = (status) => {
  const line = metrics.split("\n").find((l) => l.startsWith(`weft_instances{status="${status}"} `));
  return line ? Number(line.split(" ").pop()) : 0;
};
const cards = await page.$$eval("#counts [data-status]", (els) =>
  els.map((e) => [e.getAttribute("data-status"), Number(e.querySelector(".n").textContent)]),
);
assert.ok(cards.length >= 6, `a card per status: ${JSON.stringify(cards)}`);
for (const [status, n] of cards) {
  assert.equal(n, gauge(status), `the ${status} card`);
}
assert.equal(cards.find(([s]) => s === "succeeded")[1] >= kase.pings, true);
assert.equal(await page.locator("#parked tbody tr").count() >= 1, true, "the parked instance is listed");
await shot("overview");

// Keyboard: the first Tab reaches the skip link, then the navigation.
step("keyboard navigation");
await page.keyboard.press("Tab");
assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
await page.keyboard.press("Tab");
await page.keyboard.press("Tab");
assert.equal(await page.evaluate(() => document.activeElement.textContent), "Overview");

// Processes and one process's diagram and bindings.
step("processes and a diagram with its bindings");
await page.goto(base + "/ui/processes");
assert.ok((await page.locator("#processes tbody tr").count()) >= 4);
await shot("processes");
await page.goto(`${base}/ui/processes/order-fulfillment/1`);
const states = await page.$$eval("#diagram g.state", (els) => els.map((e) => e.getAttribute("data-state")));
for (const s of ["reserve", "charge", "ship"]) {
  assert.ok(states.includes(s), `state ${s} is drawn: ${states}`);
}
assert.ok((await page.locator("#bindings tbody tr").count()) >= 3, "a row per bound action");
await shot("process");

// An instance that went the whole way: its path and timeline.
step("an instance's path and timeline");
await page.goto(`${base}/ui/instances/${kase.order}`);
const history = (await api(`/v1/instances/${kase.order}/history`)).json().items;
assert.equal(await page.locator("#timeline tbody tr").count(), history.length, "a timeline row per record");
for (const r of history.filter((r) => r.type === "transition" && !r.branch)) {
  const edge = page.locator(`#diagram g.edge.taken[data-from="${r.from}"][data-to="${r.to}"]`);
  assert.ok((await edge.count()) >= 1, `the taken ${r.from} -> ${r.to} is highlighted`);
}
const final = (await api(`/v1/instances/${kase.order}`)).json();
assert.equal(await page.locator(`#diagram g.state.current[data-state="${final.state}"]`).count(), 1);
assert.equal(await page.getAttribute("#status", "data-status"), "succeeded");
const inputs = await page.locator("#timeline details.input").allTextContents();
assert.ok(inputs.length >= 3, `each step's input is in its transition: ${inputs.length}`);
assert.ok(inputs.some((t) => t.includes('"card": "4242"')), "the charge got the card");
const attempt = await page.locator("#timeline tbody tr").filter({ hasText: "component" }).count();
assert.ok(attempt >= 1, "attempts say which component ran them");
await shot("instance-succeeded");

// Redrive a parked instance from its page.
step("redrive a parked instance from its page");
await page.goto(`${base}/ui/instances/${kase.parked}?ok=<b>forged</b>`);
assert.equal(await page.locator(".flash").count(), 0, "a link cannot put words on the page");
assert.equal(await page.getAttribute("#status", "data-status"), "parked");
await shot("instance-parked");
await Promise.all([page.waitForURL(/ok=redriven/), page.click("#redrive button")]);
await page.waitForFunction(() => document.querySelector("#status")?.dataset.status === "succeeded");
assert.equal((await api(`/v1/instances/${kase.parked}`)).json().status, "succeeded");
await shot("instance-redriven");

// Signal with a payload from the form.
step("signal with a payload from the form");
await page.goto(`${base}/ui/instances/${kase.waiting}`);
assert.equal(await page.getAttribute("#status", "data-status"), "waiting");
await page.selectOption("#signal select[name=event]", "approve");
await page.fill("#signal textarea[name=payload]", '{"by": "ana", "note": "looks <fine> & good"}');
await shot("instance-waiting");
await Promise.all([page.waitForURL(/ok=signalled/), page.click("#signal button")]);
assert.ok((await page.locator(".flash.ok").textContent()).includes("Signal sent"));
await page.waitForFunction(() => document.querySelector("#status")?.dataset.status === "succeeded");
const signalled = (await api(`/v1/instances/${kase.waiting}`)).json();
assert.equal(signalled.status, "succeeded");
assert.deepEqual(signalled.data.decision, { by: "ana", note: "looks <fine> & good" });
assert.ok((await page.content()).includes("looks &lt;fine&gt; &amp; good"), "the payload is shown escaped");

// A bad payload is refused with the reason, and nothing changes.
step("a bad payload is refused on the page");
await page.goto(`${base}/ui/instances/${kase.waiting2}`);
await page.fill("#signal textarea[name=payload]", "{not json");
await Promise.all([page.waitForLoadState("load"), page.click("#signal button")]);
await page.waitForSelector(".flash.err");
assert.ok((await page.locator(".flash.err").textContent()).includes("not JSON"));
assert.equal((await api(`/v1/instances/${kase.waiting2}`)).json().status, "waiting");

// Live: the page follows the instance without a reload.
step("a page updates live");
await page.goto(`${base}/ui/instances/${kase.waiting2}`);
await page.evaluate(() => {
  window.__sameDocument = true;
});
const signal = await api(`/v1/instances/${kase.waiting2}/signals/reject`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: "{}",
});
assert.equal(signal.status, 200, signal.body);
await page.waitForFunction(() => document.querySelector("#status")?.dataset.status === "failed", null, {
  timeout: 10_000,
});
assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload");
await shot("instance-live");

// The list pages through every instance of a process, each once.
step(`the list pages through ${kase.pings} instances`);
await page.goto(`${base}/ui/instances?process=ping`);
const seen = new Set();
let pages = 0;
const started = Date.now();
for (;;) {
  const ids = await page.$$eval("#instances tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  for (const id of ids) {
    assert.ok(!seen.has(id), `${id} shown twice`);
    seen.add(id);
  }
  pages += 1;
  if (pages === 1) await shot("instances");
  const next = page.locator("#next");
  if ((await next.count()) === 0) break;
  await Promise.all([page.waitForLoadState("load"), next.click()]);
}
assert.equal(seen.size, kase.pings, `every ping instance, once (${pages} pages)`);
console.log(`  ${pages} pages in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// Filters: by status and by a business key.
step("filters");
await page.goto(`${base}/ui/instances?status=parked`);
assert.equal(await page.locator("#instances tbody tr").count(), 0, "the parked one was redriven");
await page.goto(`${base}/ui/instances?process=ping&version=1`);
assert.equal(await page.locator("#instances tbody tr").count(), 50, "a full page of v1");
await page.goto(`${base}/ui/instances?process=ping&version=2`);
assert.equal(await page.locator("#instances tbody tr").count(), 0, "no v2 instance");
assert.ok((await page.locator(".empty").textContent()).includes("No instance matches"));
await page.goto(`${base}/ui/instances?key=${kase.orderKey}`);
assert.ok(page.url().endsWith(`/ui/instances/${kase.order}`), page.url());

// A phone's screen.
step("readable on a phone");
await page.setViewportSize({ width: 390, height: 844 });
await page.goto(base + "/");
const wide = await page.evaluate(() => document.documentElement.scrollWidth);
assert.ok(wide <= 400, `no sideways scrolling on a phone: ${wide}px`);
await shot("overview-phone");
await page.goto(`${base}/ui/instances/${kase.order}`);
await shot("instance-phone");

await browser.close();
assert.deepEqual(problems, [], "no script errors");
console.log(`screenshots in ${shots}`);
