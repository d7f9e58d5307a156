// rapport's in-app feedback in a real browser (Debian's headless Chromium driven by
// playwright-core) and from a third-party gRPC-Web client (Connect), against the real
// server started by examples/browser_fixture.rs. Run through ./run.sh.
//
// Pages are served by this script from two origins: ALLOWED (configured for CORS on
// the server) and OTHER (not). Results are checked over native gRPC with the secret
// key. One screenshot (or more) per scenario goes to $RAPPORT_TEST_OUTPUT.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { SurveyService, InvitationStatus, Channel } from "./gen/rapport/v1/survey_service_pb.js";
import { FollowUpService, FollowUpStatus } from "./gen/rapport/v1/follow_up_service_pb.js";

const FIXTURE = process.env.RAPPORT_FIXTURE ?? "../../target/debug/examples/browser_fixture";
const OUT = process.env.RAPPORT_TEST_OUTPUT ?? "../../test-output/browser";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let fx; // what the fixture printed
let server; // the fixture process
let allowed; // origin of the page server that CORS allows
let other; // origin of a page server that it does not
let pageServers = [];
let browser; // a persistent Chromium context
let userDataDir;

/** The embedding page a product team would write: some app content and the snippet. */
function embedPage(url) {
  const q = url.searchParams;
  const attr = (name, value) => (value ? ` ${name}="${value.replace(/"/g, "&quot;")}"` : "");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme — dashboard</title>
<style>body{font:16px system-ui,sans-serif;margin:0}header{background:#24292f;color:#fff;padding:12px 20px}
main{padding:20px}a{color:inherit}</style></head>
<body><header><a href="#home" id="home">Acme</a></header>
<main><h1>Your dashboard</h1><p>Exports run nightly. The last one finished at 02:14.</p>
<button id="export" type="button">Export now</button></main>
<script>window.closes = []; addEventListener("rapport:close", (e) => window.closes.push(e.detail));</script>
<script src="${q.get("api")}/widget.js"${attr("data-key", q.get("key"))}${attr("data-customer", q.get("customer"))}${attr("data-survey", q.get("survey"))}${attr("data-customer-hash", q.get("hash"))}${attr("data-lang", q.get("lang"))}></script>
</body></html>`;
}

function startPageServer() {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, "http://page");
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(embedPage(url));
    });
    s.listen(0, "127.0.0.1", () => {
      pageServers.push(s);
      resolve(`http://127.0.0.1:${s.address().port}`);
    });
  });
}

function startFixture(allowedOrigin) {
  return new Promise((resolve, reject) => {
    const child = spawn(FIXTURE, ["--allowed-origin", allowedOrigin], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, RAPPORT_LOG_LEVEL: "warn" },
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`fixture exited with ${code}`)));
    createInterface({ input: child.stdout }).once("line", (line) => resolve([child, JSON.parse(line)]));
  });
}

const bearer = (key) => (next) => async (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return await next(req);
};

/** Native gRPC (HTTP/2) clients with a key, to check what the browser did. */
function grpcClients(key) {
  const transport = createGrpcTransport({ baseUrl: `http://${fx.grpc}`, interceptors: [bearer(key)] });
  return { surveys: createClient(SurveyService, transport), followUps: createClient(FollowUpService, transport) };
}

/** gRPC-Web clients through the HTTP gateway, as a browser app would use them. */
function grpcWebClients(key) {
  const transport = createGrpcWebTransport({ baseUrl: fx.http, interceptors: key ? [bearer(key)] : [] });
  return { surveys: createClient(SurveyService, transport) };
}

async function responsesOf(customerId) {
  const { surveys } = grpcClients(fx.secretKey);
  return (await surveys.listResponses({ customerId, pageSize: 100 })).responses;
}

/** Polls `check` (for what the page did in the background) until it returns a truthy value. */
async function eventually(check, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error("condition not met in time: " + check);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function newPage(viewport) {
  const page = await browser.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on("console", (m) => process.env.RAPPORT_TEST_VERBOSE && console.log("  [page]", m.type(), m.text()));
  return page;
}

function embedUrl(origin, { survey, customer, key = fx.publishableKey, hash, lang }) {
  const u = new URL("/embed.html", origin);
  u.searchParams.set("api", fx.http);
  u.searchParams.set("key", key);
  u.searchParams.set("survey", survey);
  u.searchParams.set("customer", customer);
  if (hash) u.searchParams.set("hash", hash);
  if (lang) u.searchParams.set("lang", lang);
  return u.toString();
}

const widget = (page) => page.locator("[data-rapport-widget]");
const shot = (page, name) => page.screenshot({ path: join(OUT, `${name}.png`) });
/** The widget's focused element inside its shadow root (score, textarea id, or null). */
const focusedInWidget = (page) =>
  page.evaluate(() => {
    const a = document.querySelector("[data-rapport-widget]")?.shadowRoot?.activeElement;
    return a ? a.dataset.score || a.id || a.className : null;
  });

before(async () => {
  mkdirSync(OUT, { recursive: true });
  allowed = await startPageServer();
  other = await startPageServer();
  [server, fx] = await startFixture(allowed);
  userDataDir = mkdtempSync(join(tmpdir(), "rapport-chromium-"));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
  });
});

after(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (server) {
    server.removeAllListeners("exit");
    server.stdin.end(); // the fixture stops when its input closes
  }
  for (const s of pageServers) s.close();
});

test("embedded snippet: a detractor score, its follow-up, then the comment", { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(embedUrl(allowed, { survey: fx.surveys.nps, customer: "web-detractor" }));
  const card = widget(page).locator("section[role=dialog]");
  await card.waitFor();
  assert.equal(await card.locator("h2").textContent(), "How likely are you to recommend Acme to a friend?");
  assert.equal(await card.locator("button[data-score]").count(), 11, "NPS 0–10");
  assert.equal(await card.locator("button[data-score='0']").getAttribute("aria-label"), "0, Not at all likely (of 0 to 10)");
  await shot(page, "1-embed-question");

  await card.locator("button[data-score='3']").click();
  await card.locator("textarea").waitFor();
  const [r] = await eventually(async () => (await responsesOf("web-detractor")).filter((x) => x.score === 3));
  assert.ok(r.followUpId, "a detractor opens a follow-up");
  const { followUps } = grpcClients(fx.secretKey);
  const open = await followUps.listFollowUps({ customerId: "web-detractor" });
  assert.equal(open.followUps.length, 1);
  assert.equal(open.followUps[0].status, FollowUpStatus.OPEN);
  assert.equal(r.comment, "", "no comment yet");

  await card.locator("textarea").fill("The export keeps timing out on big projects.");
  await shot(page, "1-embed-comment");
  await card.locator("button.send").click();
  await card.getByText("Thank you for your feedback!").waitFor();
  await shot(page, "1-embed-thanks");
  const withComment = await eventually(async () =>
    (await responsesOf("web-detractor")).find((x) => x.comment === "The export keeps timing out on big projects."),
  );
  assert.equal(withComment.id, r.id, "the comment lands on the same response");
  await widget(page).waitFor({ state: "detached", timeout: 5000 });
  assert.deepEqual(await page.evaluate(() => window.rapport.last), { outcome: "answered", score: 3 });

  // Reloaded after answering: one event, saying so, and no "eligible" contradiction.
  await page.reload();
  await page.waitForFunction(() => window.closes.length > 0);
  assert.deepEqual(await page.evaluate(() => window.rapport.last), { outcome: "already-answered" });
  assert.deepEqual(await page.evaluate(() => window.closes), [{ outcome: "already-answered" }], "exactly one event");
  assert.equal(await widget(page).count(), 0);

  // Readable on a phone: the same card at 390×844.
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(embedUrl(allowed, { survey: fx.surveys.nps, customer: "web-phone" }));
  await widget(phone).locator("section[role=dialog]").waitFor();
  const box = await widget(phone).locator("section").boundingBox();
  assert.ok(box.width <= 390 && box.x >= 0, `fits the screen: ${JSON.stringify(box)}`);
  const btn = await widget(phone).locator("button[data-score='10']").boundingBox();
  assert.ok(btn.height >= 44 && btn.width >= 24, `tap targets: ${JSON.stringify(btn)}`);
  await shot(phone, "1-embed-phone");
  await phone.close();
  await page.close();
});

test("keyboard only: Tab to a score, Enter, type, Tab, Enter", { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(embedUrl(allowed, { survey: fx.surveys.csat, customer: "web-keyboard" }));
  await widget(page).locator("section[role=dialog]").waitFor();
  let focused = null;
  for (let i = 0; i < 20 && focused !== "4"; i++) {
    await page.keyboard.press("Tab");
    focused = await focusedInWidget(page);
  }
  assert.equal(focused, "4", "Tab reaches the score buttons in order");
  await shot(page, "2-keyboard-focus");
  await page.keyboard.press("Enter");
  await eventually(async () => (await focusedInWidget(page)) === "rc"); // focus moves to the comment box
  await page.keyboard.type("Typed without a mouse.");
  await page.keyboard.press("Tab");
  assert.equal(await focusedInWidget(page), "send");
  await page.keyboard.press("Enter");
  await widget(page).getByText("Thank you for your feedback!").waitFor();
  await shot(page, "2-keyboard-thanks");
  const r = await eventually(async () => (await responsesOf("web-keyboard")).find((x) => x.comment));
  assert.equal(r.score, 4);
  assert.equal(r.comment, "Typed without a mouse.");
  await page.close();
});

test("closing the widget is recorded as a dismissal, and it stays closed", { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(embedUrl(allowed, { survey: fx.surveys.ces, customer: "web-dismiss" }));
  const card = widget(page).locator("section[role=dialog]");
  await card.waitFor();
  assert.equal(await card.locator("button[data-score]").count(), 7, "CES 1–7");
  await shot(page, "3-dismiss-before");
  // Keyboard again: focus the close button, then Escape closes.
  await card.locator("button.x").focus();
  await page.keyboard.press("Escape");
  await widget(page).waitFor({ state: "detached" });
  assert.equal((await page.evaluate(() => window.rapport.last)).outcome, "dismissed");
  await shot(page, "3-dismiss-after");
  // The same decision for the rest of the day: dismissed, and no token to show it again.
  const { surveys } = grpcWebClients(fx.publishableKey);
  const replay = await surveys.issueSurvey({ surveyId: fx.surveys.ces, customerId: "web-dismiss" });
  assert.equal(replay.invitation.status, InvitationStatus.DISMISSED);
  assert.equal(replay.token, "");
  await page.reload();
  await page.waitForFunction(() => window.closes.length > 0);
  assert.equal((await page.evaluate(() => window.rapport.last)).outcome, "already-dismissed");
  assert.equal(await page.evaluate(() => window.closes.length), 1, "exactly one event");
  assert.equal(await widget(page).count(), 0);
  await page.close();
});

test("hosted page: the question from an issued token, score, comment, thanks", { timeout: 60_000 }, async () => {
  const page = await newPage({ width: 390, height: 844 });
  const resp = await page.goto(`${fx.http}/s/${fx.hostedToken}`);
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()["referrer-policy"], "no-referrer");
  const card = page.locator("#rapport-survey section");
  await card.waitFor();
  assert.equal(await card.locator("h1").textContent(), "How likely are you to recommend Acme?");
  await shot(page, "4-hosted-question");
  await card.locator("button[data-score='9']").click();
  await card.locator("textarea").fill("Support answered within minutes.");
  await card.locator("button.send").click();
  await card.getByText("Thank you for your feedback!").waitFor();
  await shot(page, "4-hosted-thanks");
  const r = await eventually(async () => (await responsesOf("mail-1")).find((x) => x.comment));
  assert.equal(r.score, 9);
  assert.equal(r.comment, "Support answered within minutes.");
  // Opened again, the link says it was used.
  await page.goto(`${fx.http}/s/${fx.hostedToken}`);
  await page.getByText("You've already answered this survey").waitFor();
  await page.close();
});

test("hosted page: an expired link explains itself", { timeout: 30_000 }, async () => {
  const page = await newPage();
  const resp = await page.goto(`${fx.http}/s/${fx.expiredToken}`);
  assert.equal(resp.status(), 410);
  await page.getByRole("heading", { name: "This survey link has expired" }).waitFor();
  assert.match(await page.textContent("main"), /expired on \d{1,2} \w+ \d{4}/);
  await shot(page, "5-expired");
  const unknown = await page.goto(`${fx.http}/s/inv_not_a_real_token`);
  assert.equal(unknown.status(), 404);
  await page.getByText("This survey link doesn't work").waitFor();
  await page.close();
});

test("a page from an origin CORS does not allow is refused", { timeout: 30_000 }, async () => {
  const { surveys } = grpcClients(fx.secretKey);
  const funnel = async () => (await surveys.getSurveyMetrics({ scope: { case: "surveyId", value: fx.surveys.ces } })).funnel;
  const before = await funnel();
  const page = await newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(embedUrl(other, { survey: fx.surveys.ces, customer: "web-other-origin" }));
  const result = await page.evaluate(() => window.rapport.last);
  assert.equal(result.outcome, "error");
  assert.equal(await widget(page).count(), 0, "no widget");
  assert.ok(errors.some((e) => /CORS|Access-Control-Allow-Origin/i.test(e)), `the browser blocked it: ${errors}`);
  // A script on that page cannot read anything either.
  const direct = await page.evaluate(async (api) => {
    try {
      await fetch(`${api}/v1/invitations/inv_x`);
      return "read";
    } catch (e) {
      return e.name;
    }
  }, fx.http);
  assert.equal(direct, "TypeError");
  await shot(page, "6-cors-refused");
  const after = await funnel();
  assert.equal(after.issued, before.issued, "nothing was issued");
  assert.equal(after.suppressed, before.suppressed);
  await page.close();
});

test("identity verification: a wrong customer hash is refused, the right one shows", { timeout: 30_000 }, async () => {
  const v = fx.verified;
  const page = await newPage();
  const statuses = [];
  page.on("response", (r) => r.url().includes("/invitations") && statuses.push(r.status()));
  const wrong = createHmac("sha256", v.identitySecret).update("someone-else").digest("hex");
  await page.goto(embedUrl(allowed, { survey: v.survey, customer: "web-verified", key: v.publishableKey, hash: wrong }));
  const refused = await page.evaluate(() => window.rapport.last);
  assert.equal(refused.outcome, "error");
  assert.equal(refused.status, 403);
  assert.deepEqual(statuses, [403]);
  assert.equal(await widget(page).count(), 0);
  await shot(page, "7-identity-refused");

  const right = createHmac("sha256", v.identitySecret).update("web-verified").digest("hex");
  await page.goto(embedUrl(allowed, { survey: v.survey, customer: "web-verified", key: v.publishableKey, hash: right }));
  await widget(page).locator("section[role=dialog]").waitFor();
  await shot(page, "7-identity-verified");
  await page.close();
});

test("gRPC-Web from a third-party client (Connect): GetInvitation and RecordResponse", { timeout: 30_000 }, async () => {
  const { surveys: withKey } = grpcWebClients(fx.publishableKey);
  const issued = await withKey.issueSurvey({ surveyId: fx.surveys.csat, customerId: "node-grpc-web", channel: Channel.IN_APP });
  assert.ok(issued.issued && issued.token);
  const { surveys: form } = grpcWebClients(); // the token is the credential
  const inv = await form.getInvitation({ token: issued.token });
  assert.equal(inv.form.question, "How satisfied are you with the new editor?");
  assert.deepEqual([inv.form.scaleMin, inv.form.scaleMax], [1, 5]);
  assert.equal(inv.invitation.status, InvitationStatus.PENDING);

  const bad = await form.recordResponse({ target: { case: "token", value: issued.token }, score: 6 }).catch((e) => e);
  assert.ok(bad instanceof ConnectError);
  assert.equal(bad.code, Code.InvalidArgument);
  assert.match(bad.rawMessage, /score/);

  const r = await form.recordResponse({ target: { case: "token", value: issued.token }, score: 5, comment: "Love it" });
  assert.equal(r.score, 5);
  assert.equal(r.comment, "Love it");
  const again = await form.getInvitation({ token: issued.token });
  assert.equal(again.invitation.status, InvitationStatus.ANSWERED);
  assert.equal(again.invitation.responseId, r.id);
  // A publishable key may not read responses, over gRPC-Web either.
  const denied = await withKey.getResponse({ id: r.id }).catch((e) => e);
  assert.equal(denied.code, Code.PermissionDenied);
});

// ---- Branding, languages, right to left, changing the score (issue 19) ----

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** What each shipped language must show on the hosted page and after answering. */
const LANGUAGES = {
  en: { dir: "ltr", low: "Not at all likely", reason: "What is the main reason for your score?", send: "Send", thanks: "Thank you for your feedback!" },
  de: { dir: "ltr", low: "Sehr unwahrscheinlich", reason: "Was ist der wichtigste Grund für Ihre Bewertung?", send: "Senden", thanks: "Vielen Dank für Ihr Feedback!" },
  fr: { dir: "ltr", low: "Pas du tout probable", reason: "Quelle est la principale raison de votre note ?", send: "Envoyer", thanks: "Merci pour votre avis !" },
  es: { dir: "ltr", low: "Nada probable", reason: "¿Cuál es el motivo principal de su puntuación?", send: "Enviar", thanks: "¡Gracias por sus comentarios!" },
  ar: { dir: "rtl", low: "غير مرجح إطلاقًا", reason: "ما السبب الرئيسي لتقييمك؟", send: "إرسال", thanks: "شكرًا لك على ملاحظاتك!" },
};

/** The hosted page of `token` with the browser asking for `lang`, at `viewport`. */
async function hostedPage(token, lang, viewport) {
  const page = await newPage(viewport);
  await page.setExtraHTTPHeaders({ "Accept-Language": `${lang};q=1, en;q=0.5` });
  const resp = await page.goto(`${fx.http}/s/${token}`);
  assert.equal(resp.status(), 200);
  await page.locator("#rapport-survey section").waitFor();
  return page;
}

const contrastRgb = (rgb) => rgb.match(/\d+/g).slice(0, 3).map(Number);

test("hosted page in every shipped language, at desktop and phone width, branded", { timeout: 120_000 }, async () => {
  const tokens = { ...fx.branding.localeTokens, ar: fx.branding.rtlToken };
  for (const [lang, want] of Object.entries(LANGUAGES)) {
    for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
      const page = await hostedPage(tokens[lang], lang, viewport);
      assert.equal(await page.getAttribute("html", "lang"), lang);
      assert.equal(await page.getAttribute("html", "dir"), want.dir);
      const card = page.locator("#rapport-survey section");
      assert.equal(await card.getAttribute("dir"), want.dir);
      const label = await card.locator("button[data-score='0']").getAttribute("aria-label");
      assert.ok(label.startsWith(`0, ${want.low} (`) && label.includes("10"), label);
      assert.equal(await card.locator(".labels span").first().textContent(), want.low);
      assert.equal(await page.locator(".brand span").textContent(), lang === "ar" ? "أكمي" : "Acme");
      assert.match(await page.title(), lang === "ar" ? /أكمي/ : /Acme/);
      const box = await card.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= viewport.width + 1, `fits: ${JSON.stringify(box)}`);
      const btn = await card.locator("button[data-score='10']").boundingBox();
      assert.ok(btn.height >= 44, `tap target: ${JSON.stringify(btn)}`);
      await shot(page, `8-${lang}-${size}-question`);
      if (size === "phone") {
        // The comment step in this language, with the accent colour on the chosen score.
        await card.locator("button[data-score='8']").click();
        await card.getByText(want.reason).waitFor();
        const pressed = card.locator("button[aria-pressed=true]");
        assert.equal(await pressed.getAttribute("data-score"), "8");
        const bg = await pressed.evaluate((b) => getComputedStyle(b).backgroundColor);
        assert.deepEqual(contrastRgb(bg), lang === "ar" ? [10, 125, 51] : [130, 80, 223], "the survey's accent");
        assert.equal(await card.locator("button.send").textContent(), want.send);
        await shot(page, `8-${lang}-${size}-comment`);
        await card.locator("button.send").click();
        await card.getByText(want.thanks).waitFor();
        await shot(page, `8-${lang}-${size}-thanks`);
      }
      await page.close();
    }
  }
  // Each answer landed (the score, and no comment sent).
  const answered = await eventually(async () => {
    const all = await Promise.all(["en", "de", "fr", "es", "ar"].map((t) => responsesOf(`mail-${t}`)));
    return all.every((r) => r.length === 1 && r[0].score === 8) && all;
  });
  assert.equal(answered.length, 5);
});

test("right to left, keyboard only: Arabic hosted page, score changed from the keyboard", { timeout: 60_000 }, async () => {
  // A fresh browser language that the survey's own language (Arabic) overrides.
  const page = await newPage(DESKTOP);
  await page.setExtraHTTPHeaders({ "Accept-Language": "fr-FR" });
  // mail-ar answered in the previous test with the same token: use a new one.
  const { surveys } = grpcClients(fx.secretKey);
  const inv = await surveys.getInvitation({ token: fx.branding.rtlToken });
  const issued = await surveys.issueSurvey({ surveyId: inv.form.surveyId, customerId: "mail-ar-keyboard", channel: Channel.EMAIL });
  await page.goto(`${fx.http}/s/${issued.token}`);
  const card = page.locator("#rapport-survey section");
  await card.waitFor();
  assert.equal(await page.getAttribute("html", "dir"), "rtl");
  assert.equal(await page.getAttribute("html", "lang"), "ar", "the survey's language wins over the browser's");
  // Laid out right to left: 0 on the right, 10 on the left.
  const zero = await card.locator("button[data-score='0']").boundingBox();
  const ten = await card.locator("button[data-score='10']").boundingBox();
  assert.ok(zero.x > ten.x, `0 is right of 10: ${zero.x} > ${ten.x}`);
  const hostedFocus = () =>
    page.evaluate(() => {
      const a = document.getElementById("rapport-survey")?.shadowRoot?.activeElement;
      return a ? a.dataset.score || a.id || a.className : null;
    });
  let focused = null;
  for (let i = 0; i < 20 && focused !== "7"; i++) {
    await page.keyboard.press("Tab");
    focused = await hostedFocus();
  }
  assert.equal(focused, "7", "Tab reaches the scores in order");
  await page.keyboard.press("Enter");
  await eventually(async () => (await hostedFocus()) === "rc");
  await shot(page, "9-rtl-keyboard-comment");
  // Back to the scale and change the score: Shift+Tab lands on the last score (10).
  await page.keyboard.press("Shift+Tab");
  assert.equal(await hostedFocus(), "10");
  await page.keyboard.press("Enter");
  await eventually(async () => (await card.locator("button[aria-pressed=true]").getAttribute("data-score")) === "10");
  assert.equal(await card.locator("button[aria-pressed=true]").count(), 1);
  await page.keyboard.press("Tab");
  assert.equal(await hostedFocus(), "rc");
  await page.keyboard.type("خدمة ممتازة");
  await page.keyboard.press("Tab");
  assert.equal(await hostedFocus(), "send");
  await shot(page, "9-rtl-keyboard-changed");
  await page.keyboard.press("Enter");
  await card.getByText(LANGUAGES.ar.thanks).waitFor();
  await shot(page, "9-rtl-keyboard-thanks");
  const r = await eventually(async () => (await responsesOf("mail-ar-keyboard")).find((x) => x.comment));
  assert.equal(r.score, 10, "the changed score");
  assert.equal(r.comment, "خدمة ممتازة");
  await page.close();
});

test("a tapped score can be changed until the comment is sent", { timeout: 60_000 }, async () => {
  const page = await hostedPage(fx.branding.changeToken, "en", PHONE);
  const card = page.locator("#rapport-survey section");
  await card.locator("button[data-score='2']").click();
  await card.locator("textarea").waitFor();
  const first = await eventually(async () => (await responsesOf("mail-change")).find((x) => x.score === 2));
  assert.ok(first.followUpId, "a detractor score opens a follow-up");
  await card.getByText("You can still change your score until you send.").waitFor();
  await card.locator("button[data-score='9']").click();
  const changed = await eventually(async () => (await responsesOf("mail-change")).find((x) => x.score === 9));
  assert.equal(changed.id, first.id, "the same response, changed");
  // The page marks the new score once its PATCH has answered (it may answer after the
  // server state above is visible): wait for that, then nothing else is pressed.
  await card.locator("button[aria-pressed=true][data-score='9']").waitFor();
  assert.equal(await card.locator("button[aria-pressed=true]").count(), 1, "only the new score is pressed");
  assert.equal(await card.locator("textarea").count(), 1, "still one comment box");
  await shot(page, "10-score-changed");
  await card.locator("textarea").fill("Actually it was fine.");
  await card.locator("button.send").click();
  await card.getByText("Thank you for your feedback!").waitFor();
  const done = await eventually(async () => (await responsesOf("mail-change")).find((x) => x.comment));
  assert.equal(done.score, 9);
  assert.equal(await card.locator("button[data-score]").count(), 0, "no scores after sending");
  await page.close();
});

test("embedded widget: the survey's language and branding", { timeout: 60_000 }, async () => {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    const page = await newPage(viewport);
    await page.goto(embedUrl(allowed, { survey: fx.branding.spanishSurvey, customer: `web-es-${size}` }));
    const card = widget(page).locator("section[role=dialog]");
    await card.waitFor();
    assert.equal(await card.getAttribute("lang"), "es", "the survey's language, not the browser's English");
    assert.equal(await card.locator(".brand span").textContent(), "Acme");
    assert.equal(await card.locator("button.x").getAttribute("aria-label"), "Cerrar encuesta");
    assert.equal(await card.locator("button[data-score='1']").getAttribute("aria-label"), "1, Muy insatisfecho (de 1 a 5)");
    await shot(page, `11-embed-es-${size}`);
    await card.locator("button[data-score='5']").click();
    await card.getByText("¿Algo más que quiera añadir? (opcional)").waitFor();
    const send = card.locator("button.send");
    assert.deepEqual(contrastRgb(await send.evaluate((b) => getComputedStyle(b).backgroundColor)), [209, 36, 47]);
    await send.click();
    await card.getByText("¡Gracias por sus comentarios!").waitFor();
    await page.close();
  }
  // A data-lang on the snippet picks the texts when the survey has no language.
  const page = await newPage();
  await page.goto(embedUrl(allowed, { survey: fx.surveys.nps, customer: "web-lang-attr", lang: "fr" }));
  const card = widget(page).locator("section[role=dialog]");
  await card.waitFor();
  assert.equal(await card.getAttribute("lang"), "fr");
  assert.equal(await card.locator("button.x").getAttribute("aria-label"), "Fermer l'enquête");
  await page.close();
});
