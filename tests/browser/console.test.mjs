// The console (/console, docs/console.md) in a real browser: Debian's headless Chromium
// driven by playwright-core, against the real server started by
// examples/console_fixture.rs with a bulk of history (100 000 answers by default,
// RAPPORT_CONSOLE_BULK to change it). Run through ./run.sh.
//
// The test seeds the answers whose numbers it checks itself (over native gRPC), and
// computes every expected number on its own: weeks, NPS, the adjusted-Wald interval.
// What the page did is checked over native gRPC. Screenshots of every screen go to
// $RAPPORT_TEST_OUTPUT/console/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { SurveyService } from "./gen/rapport/v1/survey_service_pb.js";
import { SurveyKind } from "./gen/rapport/v1/common_pb.js";
import { FollowUpService, FollowUpStatus } from "./gen/rapport/v1/follow_up_service_pb.js";
import { ImportService } from "./gen/rapport/v1/import_service_pb.js";
import { EngagementService } from "./gen/rapport/v1/engagement_service_pb.js";
import { InsightService, ChangeVerdict } from "./gen/rapport/v1/insight_service_pb.js";

const FIXTURE = process.env.RAPPORT_CONSOLE_FIXTURE ?? "../../target/debug/examples/console_fixture";
const OUT = join(process.env.RAPPORT_TEST_OUTPUT ?? "../../test-output/browser", "console");
const BULK = process.env.RAPPORT_CONSOLE_BULK ?? "100000";
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 812 };
const DAY = 86_400_000;
const Z = 1.959963984540054; // the 97.5 % quantile of the standard normal
const HTML_COMMENT = `<img src=x onerror="window.__xss=1"><b>bold</b> & <script>window.__xss=2</script> "quoted"`;

let fx; // what the fixture printed
let server;
let browser;
let userDataDir;
let grpc; // clients with the secret key
const seeded = { answers: [], survey: null, htmlFollowUp: null, support: null, supportWeeks: null };

function startFixture() {
  return new Promise((resolve, reject) => {
    const child = spawn(FIXTURE, ["--bulk", BULK], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, RAPPORT_LOG_LEVEL: "warn" } });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`fixture exited with ${code}`)));
    createInterface({ input: child.stdout }).once("line", (line) => resolve([child, JSON.parse(line)]));
  });
}

const bearer = (key) => (next) => async (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return await next(req);
};
function clients(key) {
  const transport = createGrpcTransport({ baseUrl: `http://${fx.grpc}`, interceptors: [bearer(key)] });
  return {
    surveys: createClient(SurveyService, transport),
    followUps: createClient(FollowUpService, transport),
    imports: createClient(ImportService, transport),
    engagement: createClient(EngagementService, transport),
    insight: createClient(InsightService, transport),
  };
}

/** A deterministic NPS score for answer j of week w (every bucket occurs). */
const knownScore = (w, j) => [10, 9, 3, 8, 10, 6, 9, 7, 0, 10, 9, 5, 8][(w * 5 + j * 3) % 13];

/** Monday 00:00 UTC of the ISO week of `d`. */
function weekStart(d) {
  const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const back = (day.getUTCDay() + 6) % 7;
  return new Date(day.getTime() - back * DAY);
}

/** NPS and its adjusted-Wald 95 % interval (Rocks 2016), computed here from scores. */
function npsOf(scores) {
  const n = scores.length;
  const p = scores.filter((s) => s >= 9).length;
  const d = scores.filter((s) => s <= 6).length;
  const pt = (p + 0.75) / (n + 3);
  const dt = (d + 0.75) / (n + 3);
  const diff = pt - dt;
  const half = Z * Math.sqrt((pt + dt - diff * diff) / (n + 3));
  return { n, nps: (100 * (p - d)) / n, lower: Math.max(-100, 100 * (diff - half)), upper: Math.min(100, 100 * (diff + half)) };
}

/** A number as the page shows it in English: one decimal, a sign on non-zero NPS values. */
const shown = (v) => new Intl.NumberFormat("en", { minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(v);

async function eventually(check, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error("condition not met in time: " + check);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function newPage(viewport = DESKTOP) {
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // An API error the page shows (a refused key) is also logged by Chromium as a failed load.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
    if (process.env.RAPPORT_TEST_VERBOSE) console.log("  [page]", m.type(), m.text());
  });
  page.errors = errors;
  page.apiCalls = [];
  page.on("request", (r) => r.url().includes("/v1/") && page.apiCalls.push(`${r.method()} ${new URL(r.url()).pathname}`));
  return page;
}
const shot = (page, name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });

/** Opens the console already signed in with `key` (as after the sign-in form), at `hash`. */
async function signedIn(key, hash = "#/trends", viewport = DESKTOP) {
  const page = await newPage(viewport);
  await page.addInitScript((k) => sessionStorage.setItem("rapport.console.key", k), key);
  await page.goto(`${fx.http}/console${hash}`);
  return page;
}
const screen = (page, name) => page.waitForSelector(`body[data-screen="${name}"]`);
/** API calls of the screen drawn last (the page counts them per screen). */
const callsOfScreen = (page) => page.evaluate(() => window.rapportConsole.calls.slice());

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const started = Date.now();
  [server, fx] = await startFixture();
  console.log(`  fixture ready with ${fx.bulk} bulk answers in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  grpc = clients(fx.secretKey);
  userDataDir = mkdtempSync(join(tmpdir(), "rapport-console-"));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS, viewport: DESKTOP, locale: "en-GB",
  });

  // The answers whose numbers the tests check: 8 weeks of an NPS survey, imported with
  // their times (detractors open their follow-ups, overdue by now).
  const survey = await grpc.surveys.createSurvey({ survey: { kind: SurveyKind.NPS, name: "Onboarding NPS", question: "How likely are you to recommend our onboarding?" } });
  seeded.survey = survey.id;
  const now = Date.now();
  const answers = [];
  for (let w = 0; w < 8; w++) {
    for (let j = 0; j < 5 + w; j++) {
      const at = new Date(now - (w * 7 + 1) * DAY - j * 3_600_000 * 7);
      answers.push({ externalId: `known-${w}-${j}`, surveyId: survey.id, customerId: `known-${w}-${j % 4}`, score: knownScore(w, j),
        recordedTime: at, plan: (w + j) % 3 === 0 ? "enterprise" : "starter" });
    }
  }
  const out = await grpc.imports.importResponses({
    openFollowUps: true,
    responses: answers.map((a) => ({ ...a, recordedTime: timestampFromDate(a.recordedTime), properties: { plan: a.plan }, plan: undefined })),
  });
  assert.equal(out.imported, answers.length, JSON.stringify(out.results.filter((r) => r.reason)));
  seeded.answers = answers;

  // A live detractor whose comment is HTML, with a profile behind it.
  await grpc.engagement.upsertCustomer({ customerId: "cust-html", traits: { name: "Ada <i>Lovelace</i>", email: "ada@example.com", plan: "enterprise" } });
  const events = [];
  for (let d = 0; d < 20; d++) {
    const time = timestampFromDate(new Date(now - d * DAY - 3_600_000));
    events.push({ messageId: `s-${d}`, customerId: "cust-html", time, kind: { case: "session", value: { activitySeconds: BigInt(300 + d * 10) } } });
    if (d % 2 === 0) events.push({ messageId: `a-${d}`, customerId: "cust-html", time, kind: { case: "action", value: { name: "report_exported" } } });
  }
  await grpc.engagement.recordEvents({ events });
  const r = await grpc.surveys.recordResponse({ target: { case: "direct", value: { surveyId: survey.id, customerId: "cust-html" } }, score: 2, comment: HTML_COMMENT });
  assert.ok(r.followUpId, "a detractor opens a follow-up");
  seeded.htmlFollowUp = r.followUpId;

  // "Is this change real?", themes and an account: a support survey whose last week was
  // all detractors complaining of crashes and whose current week is all promoters
  // praising support; its first four customers are the account "initrode".
  const support = await grpc.surveys.createSurvey({ survey: { kind: SurveyKind.NPS, name: "Support NPS", question: "How likely are you to recommend our support?" } });
  seeded.support = support.id;
  for (let i = 0; i < 4; i++) {
    await grpc.engagement.upsertCustomer({ customerId: `sup-${i}`, accountId: "initrode", traits: { name: `Support ${i}` }, properties: { role: i === 0 ? "champion" : "user" } });
  }
  const thisWeek = weekStart(new Date(now));
  const lastWeek = new Date(thisWeek.getTime() - 7 * DAY);
  const bad = ["The app crashes on login", "Crashes every time I export", `It crashes <img src=x onerror="window.__xss=3"> <script>window.__xss=4</script>`];
  const good = ["Great support team", "Support answered fast and well"];
  const supportAnswers = [];
  for (let j = 0; j < 12; j++) {
    supportAnswers.push({ externalId: `sup-bad-${j}`, surveyId: support.id, customerId: `sup-${j % 6}`, score: 2, comment: bad[j % 3],
      recordedTime: timestampFromDate(new Date(lastWeek.getTime() + DAY + j * 3_600_000)) });
    supportAnswers.push({ externalId: `sup-good-${j}`, surveyId: support.id, customerId: `sup-${j % 6}`, score: 10, comment: good[j % 2],
      recordedTime: timestampFromDate(new Date(thisWeek.getTime() + ((now - thisWeek.getTime()) * (j + 1)) / 14)) });
  }
  const sup = await grpc.imports.importResponses({ openFollowUps: false, responses: supportAnswers });
  assert.equal(sup.imported, supportAnswers.length, JSON.stringify(sup.results.filter((x) => x.reason)));
  seeded.supportWeeks = { lastWeek, thisWeek };
});

after(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (server) {
    server.removeAllListeners("exit");
    server.stdin.end();
  }
});

test("the first screen renders in under a second with the bulk in the tenant, in a handful of calls", { timeout: 120_000 }, async () => {
  const timings = [];
  for (let i = 0; i < 3; i++) {
    const page = await signedIn(fx.readKey);
    await screen(page, "trends");
    const ms = await page.evaluate(() => performance.getEntriesByName("rapport:first-screen")[0].startTime);
    timings.push(ms);
    // Surveys and metrics draw it; the comparison and the themes follow it.
    assert.ok(page.apiCalls.length <= 5, `first screen calls: ${page.apiCalls}`);
    assert.ok((await page.locator("svg polyline.line").count()) >= 1, "the trend is drawn");
    if (i === 2) await shot(page, "1-first-screen-read-key");
    await page.close();
  }
  // The median of three visits: the first one also starts the browser's renderer and
  // warms the database's page cache.
  const median = [...timings].sort((a, b) => a - b)[1];
  console.log(`  first screen (navigation to the trend drawn, ${fx.bulk} bulk answers + ${seeded.answers.length} seeded): ` +
    `${timings.map((t) => t.toFixed(0)).join(" ms, ")} ms; median ${median.toFixed(0)} ms`);
  assert.ok(median < 1000, `the first screen took ${timings} ms`);
});

test("sign in with a read key: CSP, the form, read-only badge, nothing to act on", { timeout: 60_000 }, async () => {
  const page = await newPage();
  const resp = await page.goto(`${fx.http}/console`);
  const csp = resp.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(resp.headers()["x-frame-options"], "DENY");
  await screen(page, "sign-in");
  await shot(page, "2-sign-in");
  await page.getByLabel("API key").fill("rk_pub_abc");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("A publishable key (rk_pub_…) can only answer surveys").waitFor();
  await page.getByLabel("API key").fill("rk_secret_not_a_real_key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(/This key was not accepted/).waitFor();
  await page.getByLabel("API key").fill(fx.readKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await screen(page, "trends");
  assert.equal(await page.locator("#read-only").isVisible(), true);
  // Only the tab's session storage holds the key: no cookie, nothing else stored.
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("rapport.console.key"), local: localStorage.length, cookie: document.cookie }));
  assert.deepEqual(stored, { session: fx.readKey, local: 0, cookie: "" });
  assert.equal((await browser.cookies(fx.http)).length, 0);
  await page.goto(`${fx.http}/console#/follow-ups`);
  await screen(page, "follow-ups");
  assert.ok((await page.locator(".queue > li").count()) > 0, "the queue is shown");
  await page.locator(".queue > li button[aria-expanded]").first().click();
  await page.locator(".queue > li .fu-body h3").first().waitFor();
  assert.equal(await page.locator("[data-action]").count(), 0, "no action for a read key");
  await shot(page, "3-queue-read-key");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a read key is refused on every write route, and nothing changes", { timeout: 60_000 }, async () => {
  const before = await grpc.followUps.getFollowUp({ id: seeded.htmlFollowUp });
  const page = await signedIn(fx.readKey);
  await screen(page, "trends");
  const doc = await (await fetch(`${fx.http}/openapi.json`)).json();
  const writes = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      // CompareSurveyMetrics is a read on a POST route (docs/api.md): a read key may call it.
      if (method !== "get" && !path.endsWith("metrics:compare")) writes.push([method.toUpperCase(), path.replace(/\{[^}]+\}/g, seeded.htmlFollowUp)]);
    }
  }
  assert.ok(writes.length >= 15, `every write route: ${writes.length}`);
  const results = await page.evaluate(async ([key, writes]) => {
    const out = [];
    for (const [method, path] of writes) {
      const r = await fetch(path, { method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: method === "DELETE" ? undefined : "{}" });
      out.push([method, path, r.status, (await r.json()).code]);
    }
    return out;
  }, [fx.readKey, writes]);
  for (const [method, path, status, code] of results) {
    assert.deepEqual([status, code], [403, 7], `${method} ${path} with a read key`);
  }
  // The reads the console uses work with it.
  const reads = await page.evaluate(async (key) => {
    const r = await fetch("/v1/follow-ups?orderBy=due_time", { headers: { Authorization: `Bearer ${key}` } });
    return r.status;
  }, fx.readKey);
  assert.equal(reads, 200);
  const after = await grpc.followUps.getFollowUp({ id: seeded.htmlFollowUp });
  assert.deepEqual([after.status, after.entries.length, after.assignee], [before.status, before.entries.length, before.assignee]);
  await page.close();
});

test("the trend and its band show the seeded numbers, computed here", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey, `#/trends?scope=survey:${seeded.survey}&per=week&days=90`);
  await screen(page, "trends");
  const chart = page.getByRole("img", { name: /NPS per week with its 95 % interval/ });
  await chart.waitFor();
  assert.ok((await chart.locator("polygon.band").count()) + (await chart.locator("rect.band").count()) >= 1, "the band");
  assert.equal(await chart.locator("polyline.line").count(), 1, "one run of consecutive weeks");

  // Expected, per ISO week and overall, from the seeded answers alone.
  const byWeek = new Map();
  for (const a of seeded.answers) {
    const k = weekStart(a.recordedTime).toISOString();
    byWeek.set(k, [...(byWeek.get(k) || []), a.score]);
  }
  byWeek.set(weekStart(new Date()).toISOString(), [...(byWeek.get(weekStart(new Date()).toISOString()) || []), 2]); // the live answer
  assert.equal(await chart.locator("circle.dot").count(), byWeek.size, "one point per week with answers");

  await page.locator("section", { has: chart }).getByText("Show as a table").click();
  const rows = await page.locator("tr[data-start]").evaluateAll((trs) => trs.map((tr) => ({
    start: tr.dataset.start, cells: [...tr.children].map((c) => c.textContent),
  })));
  let checked = 0;
  for (const [start, scores] of byWeek) {
    const row = rows.find((r) => new Date(r.start).getTime() === new Date(start).getTime());
    assert.ok(row, `a row for the week of ${start}: ${rows.map((r) => r.start)}`);
    const want = npsOf(scores);
    const [, n, value, lower, upper, promoters, passives, detractors] = row.cells;
    assert.equal(n, String(want.n), `n of ${start}`);
    assert.equal(value, shown(want.nps), `NPS of ${start}`);
    assert.equal(lower, shown(want.lower), `lower bound of ${start}`);
    assert.equal(upper, shown(want.upper), `upper bound of ${start}`);
    assert.equal(Number(promoters) + Number(passives) + Number(detractors), want.n);
    assert.equal(Number(detractors), scores.filter((s) => s <= 6).length);
    checked++;
  }
  assert.equal(checked, byWeek.size);
  const all = npsOf([...byWeek.values()].flat());
  assert.equal(await page.locator("[data-testid=headline]").textContent(), shown(all.nps));
  assert.ok((await page.locator("main").textContent()).includes(`95 % interval ${shown(all.lower)} to ${shown(all.upper)}`));
  await shot(page, "4-trend-seeded-week");

  // A segment by property: only the enterprise answers.
  await page.getByLabel("Segment").fill("plan=enterprise");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("Only answers with plan = enterprise.").waitFor();
  const enterprise = npsOf(seeded.answers.filter((a) => a.plan === "enterprise").map((a) => a.score));
  await eventually(async () => (await page.locator("[data-testid=headline]").textContent()) === shown(enterprise.nps));
  assert.equal(await page.locator("[data-testid=n]").textContent(), `n = ${enterprise.n}`);
  await shot(page, "4-trend-segment");
  assert.ok((await callsOfScreen(page)).length <= 4, "a trend is one metrics call (and the surveys, once), then the comparison and the themes");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("is this change real? the last two weeks compared in words, with the difference and its interval", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey, `#/trends?scope=survey:${seeded.support}&per=week&days=30`);
  await screen(page, "trends");
  const panel = page.locator("[data-testid=compare]");
  await panel.getByRole("heading", { name: "Is this change real?" }).waitFor();
  await panel.locator("[data-testid=verdict]").waitFor();
  assert.equal(await panel.locator("[data-testid=verdict]").textContent(), "Higher: a real change");
  // The same comparison over gRPC: the page shows its sentence and its numbers.
  const { lastWeek, thisWeek } = seeded.supportWeeks;
  const want = await grpc.insight.compareSurveyMetrics({
    scope: { case: "surveyId", value: seeded.support },
    first: { startTime: timestampFromDate(lastWeek), endTime: timestampFromDate(thisWeek) },
    second: { startTime: timestampFromDate(thisWeek), endTime: timestampFromDate(new Date(thisWeek.getTime() + 7 * DAY)) },
  });
  assert.equal(want.headline.verdict, ChangeVerdict.HIGHER);
  assert.equal(want.headline.difference, 200);
  const sentence = await panel.locator("[data-testid=verdict-sentence]").textContent();
  assert.match(sentence, /^NPS is higher in .+ than in .+, a real change at the 5 % level \(/, sentence);
  assert.ok(sentence.includes("difference +200.0 points"), sentence);
  const text = await panel.textContent();
  assert.ok(text.includes(`Difference +200.0 points, 95 % interval ${shown(want.headline.interval.lower)} to ${shown(want.headline.interval.upper)}`), text);
  assert.ok(text.includes("(n = 12) against"), text);
  await panel.scrollIntoViewIfNeeded();
  await shot(page, "5-compare");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("comment themes: detractors' terms against promoters', with z and counts, as text", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey, `#/trends?scope=survey:${seeded.support}&per=week&days=30`);
  await screen(page, "trends");
  const panel = page.locator("[data-testid=themes]");
  const unhappy = panel.locator("[data-testid=themes-unhappy]");
  await unhappy.locator("table").waitFor();
  const want = await grpc.insight.commentThemes({ scope: { case: "surveyId", value: seeded.support }, limit: 10 });
  const top = want.unhappyThemes[0];
  assert.equal(top.term, "crashes");
  const row = unhappy.locator("tbody tr").first();
  const cells = await row.locator("th, td").allTextContents();
  assert.deepEqual(cells, ["crashes", new Intl.NumberFormat("en", { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: "exceptZero" }).format(top.zScore),
    String(top.unhappyComments), String(top.happyComments)]);
  assert.equal(top.unhappyComments, 12n);
  const happy = await panel.locator("[data-testid=themes-happy] tbody th").allTextContents();
  assert.ok(happy.includes("support"), `promoters' terms: ${happy}`);
  // Terms cut from HTML in comments are text: no element of theirs, no script run.
  assert.equal(await panel.locator("img, script, b").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await panel.scrollIntoViewIfNeeded();
  await shot(page, "5-themes");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("an account: from a customer's account id, and from the list of accounts", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey, "#/customers/sup-1");
  await screen(page, "customers");
  await page.getByRole("link", { name: "Account initrode" }).click();
  await page.getByRole("heading", { name: "Account initrode", level: 1 }).waitFor();
  assert.equal(await page.getAttribute("body", "data-screen"), "accounts");
  const want = await grpc.insight.getAccountProfile({ accountId: "initrode" });
  const health = page.locator("[data-testid=account-health]");
  const score = want.health.score.value;
  assert.equal(await health.locator(".headline .value").textContent(), score === undefined ? "—" : shown(score).replace("+", ""));
  // Each measure's label (without its definition) and its value.
  const shownMeasures = Object.fromEntries(await page.locator("dl.measures dt").evaluateAll((dts) => dts.map((dt) =>
    [(dt.querySelector(".term") || dt).childNodes[0].textContent, dt.nextElementSibling.textContent])));
  assert.equal(shownMeasures.Contacts, "4", JSON.stringify(shownMeasures));
  assert.equal(shownMeasures.Respondents, "4");
  assert.equal(want.voice.nps.value, 100, "each contact's latest answer is a promoter's");
  assert.equal(shownMeasures["Account NPS"], `+100.0 (95 % interval ${shown(want.voice.npsInterval.lower)} to ${shown(want.voice.npsInterval.upper)})`);
  await shot(page, "8-account");

  // The list, by health: initrode is there, and its link opens it.
  await page.getByRole("link", { name: "Accounts" }).click();
  await screen(page, "accounts");
  await page.getByRole("heading", { name: "Accounts by health, lowest first" }).waitFor();
  const listed = await grpc.insight.listAccounts({});
  assert.deepEqual(await page.locator("tbody th a").allTextContents(), listed.accounts.map((a) => a.accountId));
  await shot(page, "8-accounts");
  await page.getByRole("link", { name: "initrode" }).click();
  await page.getByRole("heading", { name: "Account initrode", level: 1 }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a comment with HTML is shown as text, on the queue and on the customer", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.secretKey, "#/follow-ups");
  await screen(page, "follow-ups");
  const item = page.locator(`li[data-follow-up="${seeded.htmlFollowUp}"]`);
  await item.waitFor();
  const quote = item.locator("[data-testid=comment]");
  assert.equal(await quote.textContent(), HTML_COMMENT);
  assert.equal(await quote.locator("*").count(), 0, "no element came out of the comment");
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.goto(`${fx.http}/console#/customers/cust-html`);
  await screen(page, "customers");
  assert.equal(await page.locator("main img, main b, main i, main script").count(), 0);
  assert.match(await page.locator("main").textContent(), /Ada <i>Lovelace<\/i>/);
  assert.ok((await page.locator("td").allTextContents()).includes(HTML_COMMENT));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("with a secret key: the queue, oldest SLA first, and every action seen over gRPC", { timeout: 90_000 }, async () => {
  const page = await signedIn(fx.secretKey, "#/follow-ups");
  await screen(page, "follow-ups");
  assert.ok((await callsOfScreen(page)).length <= 3, `the queue's calls: ${await callsOfScreen(page)}`);
  const dues = await page.locator(".queue > li").evaluateAll((lis) => lis.map((li) => li.dataset.due));
  const open = [];
  for (const status of [FollowUpStatus.OPEN, FollowUpStatus.ACKNOWLEDGED]) {
    open.push(...(await grpc.followUps.listFollowUps({ status, pageSize: 1000 })).followUps);
  }
  assert.equal(dues.length, Math.min(open.length, 200));
  const times = dues.map((d) => Date.parse(d));
  assert.deepEqual(times, [...times].sort((a, b) => a - b), "the earliest due first");
  const earliest = open.map((f) => f.dueTime.seconds).sort((a, b) => (a < b ? -1 : 1))[0];
  assert.equal(BigInt(Math.floor(new Date(dues[0]).getTime() / 1000)), earliest, "the oldest SLA on top");

  await page.getByLabel("Your name or e-mail").fill("ana@acme.example");
  const item = () => page.locator(`li[data-follow-up="${seeded.htmlFollowUp}"]`);
  await item().getByRole("button", { name: "Details and actions" }).click();
  await item().getByRole("heading", { name: "This customer's latest answers" }).waitFor();
  await shot(page, "5-queue-details");
  const fu = () => grpc.followUps.getFollowUp({ id: seeded.htmlFollowUp });

  await item().getByRole("button", { name: "Acknowledge" }).click();
  await eventually(async () => (await fu()).status === FollowUpStatus.ACKNOWLEDGED);
  await item().locator('[data-status="acknowledged"]').waitFor();

  await item().getByLabel("Assignee (empty to unassign)").fill("bo@acme.example");
  await item().getByRole("button", { name: "Assign" }).click();
  await eventually(async () => (await fu()).assignee === "bo@acme.example");
  await item().getByText("Assigned to bo@acme.example").first().waitFor();

  await item().getByLabel("Note", { exact: true }).fill("Called back; <b>export</b> bug confirmed.");
  await item().getByRole("button", { name: "Add note" }).click();
  const noted = await eventually(async () => (await fu()).entries.find((e) => e.body === "Called back; <b>export</b> bug confirmed."));
  assert.equal(noted.author, "ana@acme.example");
  await item().getByText("Called back; <b>export</b> bug confirmed.").waitFor();

  await item().getByLabel("Resolution: what was done").fill("Fixed in 4.2; customer informed.");
  await item().getByRole("button", { name: "Resolve" }).click();
  const resolved = await eventually(async () => { const f = await fu(); return f.status === FollowUpStatus.RESOLVED && f; });
  assert.equal(resolved.resolution, "Fixed in 4.2; customer informed.");
  await item().locator('[data-status="resolved"]').waitFor();
  await shot(page, "5-queue-resolved");

  // Dismiss another one, from a fresh page: the resolved one has left the queue.
  await page.reload();
  await screen(page, "follow-ups");
  assert.equal(await item().count(), 0, "resolved follow-ups leave the queue");
  const other = page.locator(".queue > li").first();
  const otherId = await other.getAttribute("data-follow-up");
  await other.getByRole("button", { name: "Details and actions" }).click();
  await other.getByLabel("Reason").fill("Test answer");
  await other.getByRole("button", { name: "Dismiss" }).click();
  await eventually(async () => (await grpc.followUps.getFollowUp({ id: otherId })).status === FollowUpStatus.DISMISSED);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a customer's profile: health with components and flags, definitions on hover and focus", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey, "#/customers");
  await screen(page, "customers");
  assert.ok((await callsOfScreen(page)).length <= 2);
  await shot(page, "6-customers");
  await page.getByLabel("Customer id").fill("cust-html");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("heading", { name: "Customer cust-html" }).waitFor();
  assert.ok((await callsOfScreen(page)).length <= 4, `the profile's calls: ${await callsOfScreen(page)}`);
  const health = page.locator("[data-testid=health]");
  const components = await health.locator("tbody th").allTextContents();
  for (const c of ["Engagement percentile", "Stickiness", "Recency", "NPS", "CSAT", "Effort (CES)", "Open follow-ups"]) {
    assert.ok(components.some((t) => t.startsWith(c)), `component ${c}: ${components}`);
  }
  await health.getByText("Detractor").waitFor(); // the risk flag of a detractor's latest NPS
  const profile = await grpc.engagement.getEngagementProfile({ customerId: "cust-html" });
  assert.equal(await health.locator(".headline .value").textContent(), profile.health.score.value === undefined ? "—" : shown(profile.health.score.value).replace("+", ""));
  // A definition: on hover, and on keyboard focus.
  const term = health.locator(".term").first();
  const def = term.locator(".def");
  assert.equal(await def.isVisible(), false);
  await term.hover();
  assert.equal(await def.isVisible(), true);
  assert.ok((await def.textContent()).length > 10, "a real definition");
  await page.mouse.move(0, 0);
  await term.focus();
  assert.equal(await def.isVisible(), true);
  await page.getByRole("heading", { name: "Voice" }).waitFor();
  await page.getByRole("heading", { name: "Activity" }).waitFor();
  await page.getByRole("heading", { name: "Value" }).waitFor();
  await page.getByRole("heading", { name: "Answers" }).waitFor();
  await shot(page, "7-customer");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("keyboard only: sign in, go to the queue, open a follow-up and acknowledge it", { timeout: 60_000 }, async () => {
  // A fresh open follow-up to act on.
  const r = await grpc.surveys.recordResponse({ target: { case: "direct", value: { surveyId: seeded.survey, customerId: "cust-keys" } }, score: 1, comment: "Keyboard" });
  const page = await newPage();
  await page.goto(`${fx.http}/console`);
  await screen(page, "sign-in");
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    return a ? a.id || a.dataset.action || a.textContent.trim().slice(0, 40) : null;
  });
  /** Tabs until the focused element is `target` (by id, action or text). */
  const tabTo = async (target, max = 60) => {
    for (let i = 0; i < max; i++) {
      if ((await focused()) === target) return;
      await page.keyboard.press("Tab");
    }
    assert.fail(`Tab never reached ${target}; at ${await focused()}`);
  };
  assert.equal(await focused(), "key", "the key field has the focus");
  await page.keyboard.type(fx.secretKey);
  await page.keyboard.press("Enter");
  await screen(page, "trends");
  await tabTo("nav-follow-ups");
  await page.keyboard.press("Enter");
  await screen(page, "follow-ups");
  assert.equal(await page.evaluate(() => document.activeElement.tagName), "H1", "focus moves to the new screen's heading");
  // The follow-up just opened is due last: tab to its details.
  const li = page.locator(`li[data-follow-up="${r.followUpId}"]`);
  await li.waitFor();
  const toggleId = await li.locator("button[aria-expanded]").evaluate((b) => { b.id = "kb-toggle"; return b.id; });
  await tabTo(toggleId, 400);
  await page.keyboard.press("Enter");
  assert.equal(await li.locator("button[aria-expanded]").getAttribute("aria-expanded"), "true");
  await li.locator("[data-action=acknowledge]").waitFor();
  await tabTo("acknowledge");
  await shot(page, "8-keyboard-focus");
  await page.keyboard.press("Enter");
  await eventually(async () => (await grpc.followUps.getFollowUp({ id: r.followUpId })).status === FollowUpStatus.ACKNOWLEDGED);
  await li.locator('[data-status="acknowledged"]').waitFor();
  // Focus stays in the follow-up, on its toggle.
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-expanded")), "true");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("phone width (375 px): every screen fits, in light and dark", { timeout: 90_000 }, async () => {
  for (const scheme of ["light", "dark"]) {
    for (const [name, hash, ready] of [["trends", "#/trends", "trends"], ["queue", "#/follow-ups", "follow-ups"], ["customer", "#/customers/cust-html", "customers"]]) {
      const page = await signedIn(fx.secretKey, hash, PHONE);
      await page.emulateMedia({ colorScheme: scheme });
      await screen(page, ready);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= PHONE.width, `${name} at 375 px is ${width} px wide`);
      if (name === "trends") {
        const box = await page.locator("svg polyline.line").first().evaluate((l) => l.ownerSVGElement.getBoundingClientRect().width);
        assert.ok(box <= PHONE.width && box > 250, `the chart fits: ${box}`);
      }
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r] = bg.match(/\d+/g).map(Number);
      assert.ok(scheme === "dark" ? r < 60 : r > 200, `${scheme} background: ${bg}`);
      await shot(page, `9-phone-${name}-${scheme}`);
      assert.deepEqual(page.errors, []);
      await page.close();
    }
  }
});

test("localised like the hosted page: German, and Arabic right to left", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.readKey);
  await screen(page, "trends");
  await page.selectOption("#lang", "de");
  await page.getByRole("heading", { name: "Trends" }).waitFor();
  assert.equal(await page.getAttribute("html", "lang"), "de");
  await page.getByRole("link", { name: "Nachverfolgung" }).click();
  await page.getByRole("heading", { name: "Nachverfolgung" }).waitFor();
  await shot(page, "10-queue-de");
  await page.selectOption("#lang", "ar");
  await page.getByRole("heading", { name: "المتابعات" }).waitFor();
  assert.equal(await page.getAttribute("html", "dir"), "rtl");
  await shot(page, "10-queue-ar");
  await page.close();
});

test("another tenant's key sees nothing of this tenant", { timeout: 60_000 }, async () => {
  const page = await signedIn(fx.globexKey, "#/follow-ups");
  await screen(page, "follow-ups");
  assert.equal(await page.locator(".queue > li").count(), 0);
  await page.goto(`${fx.http}/console#/customers/cust-html`);
  await screen(page, "customers");
  await page.getByText(/Could not load/).waitFor();
  await page.close();
});
