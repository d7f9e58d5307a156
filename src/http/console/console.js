/*! rapport console (docs/console.md). No dependencies, no build step, no external asset.
 *
 *  A client of rapport's JSON API, served by rapport at /console. The key the user
 *  pastes stays in this tab's sessionStorage (no cookie, no server session) and goes
 *  with every call as `Authorization: Bearer …`, so the API's own authentication,
 *  limits and errors apply; a read-only key (rk_read_…) sees no action and the API
 *  refuses its writes anyway. Every value reaches the page through textContent or an
 *  attribute, never as markup: comments are user input. No inline script or style
 *  (the page's Content-Security-Policy forbids both).
 *
 *  Screens (location.hash): #/trends, #/follow-ups, #/customers, #/customers/<id>,
 *  #/accounts, #/accounts/<id>. Trends also asks whether its last two periods differ
 *  (CompareSurveyMetrics) and what unhappy comments talk about (CommentThemes), after
 *  the chart is drawn.
 *  For tests: window.rapportConsole.calls lists the API calls made since the last
 *  screen began, and performance mark "rapport:screen" is set when a screen is drawn.
 */
(() => {
  "use strict";

  /** Texts by lower-case language tag (the console_* keys of locales/), filled in by the server. */
  const LOCALES = __RAPPORT_CONSOLE_LOCALES__;

  const KEY_STORE = "rapport.console.key";
  const AUTHOR_STORE = "rapport.console.author";
  const LANG_STORE = "rapport.console.lang";
  const KINDS = ["NPS", "CSAT", "CES"];
  const enc = encodeURIComponent;

  const state = {
    key: sessionStorage.getItem(KEY_STORE) || "",
    surveys: null, // ListSurveys, once per sign-in
    lang: null,
    screen: null,
    generation: 0,
    firstDrawn: false,
  };
  const debug = (window.rapportConsole = { calls: [] });

  // ---------------------------------------------------------------- texts

  function pickLocale() {
    const wanted = [sessionStorage.getItem(LANG_STORE), ...(navigator.languages || [navigator.language])];
    const tags = Object.keys(LOCALES);
    for (const raw of wanted) {
      const tag = String(raw || "").trim().toLowerCase();
      if (!tag) continue;
      const primary = tag.split("-")[0];
      const hit = LOCALES[tag] ? tag : LOCALES[primary] ? primary : tags.find((x) => x.split("-")[0] === primary);
      if (hit) return hit;
    }
    return "en";
  }

  /** The text of `key` in the chosen language (else English), with {name} filled in. */
  function t(key, values) {
    const l = LOCALES[state.lang] || {};
    const text = l[key] !== undefined ? l[key] : (LOCALES.en || {})[key] !== undefined ? LOCALES.en[key] : key;
    return values ? text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m)) : text;
  }

  const numberFormats = new Map();
  /** A number in the page's language with `digits` decimals; `signed` shows + on positives. */
  function num(v, digits = 1, signed = false) {
    if (v === undefined || v === null || Number.isNaN(Number(v))) return t("none");
    const k = `${digits}|${signed}`;
    if (!numberFormats.has(k)) {
      numberFormats.set(k, new Intl.NumberFormat(state.lang, {
        minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: signed ? "exceptZero" : "auto",
      }));
    }
    return numberFormats.get(k).format(Number(v));
  }
  const int = (v) => num(Number(v || 0), 0);
  const pct = (ratio) => (ratio === undefined || ratio === null ? t("none") : num(Number(ratio) * 100, 1) + " %");

  function date(iso, withTime) {
    if (!iso) return t("none");
    const opts = withTime ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "medium" };
    return new Intl.DateTimeFormat(state.lang, opts).format(new Date(iso));
  }
  function periodLabel(iso, per) {
    const d = new Date(iso);
    const opts = per === "month" ? { month: "short", year: "numeric", timeZone: "UTC" } : { day: "numeric", month: "short", timeZone: "UTC" };
    return new Intl.DateTimeFormat(state.lang, opts).format(d);
  }
  function relative(iso) {
    const diff = (new Date(iso).getTime() - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(state.lang, { numeric: "auto" });
    const abs = Math.abs(diff);
    if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
    if (abs < 86400 * 2) return rtf.format(Math.round(diff / 3600), "hour");
    return rtf.format(Math.round(diff / 86400), "day");
  }

  // ---------------------------------------------------------------- DOM

  /** An element with attributes and children (strings become text nodes, never markup). */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  function append(e, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  let ids = 0;
  const uid = (p) => `${p}-${++ids}`;

  /** A term whose definition shows on hover and on keyboard focus, and is read as its description. */
  function term(label, definition) {
    if (!definition) return h("span", {}, label);
    const id = uid("def");
    return h("span", { class: "term", tabindex: "0", "aria-describedby": id }, label,
      h("span", { class: "def", id, role: "tooltip" }, definition));
  }

  /** A table: head cells, rows of cells (a cell is text, {text, num} or {node}; a row's
   *  `attrs` property, if any, goes on its <tr>). */
  function table(caption, head, rows) {
    const cell = (tag, c) => {
      const o = typeof c === "object" && c !== null && !(c instanceof Node) ? c : { text: c };
      const el = h(tag, { class: o.num ? "num" : undefined, scope: tag === "th" ? "col" : undefined });
      append(el, [o.node || o.text]);
      return el;
    };
    return h("div", { class: "table-wrap" }, h("table", {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, head.map((c) => cell("th", c)))),
      h("tbody", {}, rows.map((r) => h("tr", r.attrs || {}, r.map((c, i) => (i === 0 ? rowHeader(c) : cell("td", c))))))));
    function rowHeader(c) {
      const el = h("th", { scope: "row" });
      append(el, [typeof c === "object" && c !== null && !(c instanceof Node) ? c.node || c.text : c]);
      return el;
    }
  }
  /** The table alternative of a chart, folded under it. */
  const tableAlternative = (caption, head, rows) => h("details", {}, h("summary", {}, t("show_table")), table(caption, head, rows));

  const main = () => document.getElementById("main");
  function announce(text) {
    const live = document.getElementById("announce");
    live.textContent = "";
    setTimeout(() => { live.textContent = text; }, 30);
  }

  // ---------------------------------------------------------------- API

  /** Calls a JSON route with the key; rejects with {status, code, message}. */
  async function api(method, path, body) {
    debug.calls.push(`${method} ${path.split("?")[0]}`);
    const headers = { Authorization: "Bearer " + state.key, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method, headers, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = {};
    try { json = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const e = new Error(json.message || `HTTP ${r.status}`);
      e.status = r.status;
      e.code = json.code;
      // A key revoked meanwhile: back to the sign-in form (not while signing in).
      if (r.status === 401 && sessionStorage.getItem(KEY_STORE)) signOut(t("key_refused", { message: e.message }));
      throw e;
    }
    return json;
  }

  async function surveys() {
    if (!state.surveys) {
      const r = await api("GET", "/v1/surveys?pageSize=1000&includeArchived=true");
      state.surveys = r.surveys || [];
    }
    return state.surveys;
  }
  const kindOf = (k) => String(k || "").replace("SURVEY_KIND_", "");
  function surveyName(id) {
    const sv = (state.surveys || []).find((x) => x.id === id);
    return sv ? sv.name || sv.question || id : id;
  }
  const readOnly = () => state.key.startsWith("rk_read_");

  // ---------------------------------------------------------------- shell

  function applyLanguage() {
    const l = LOCALES[state.lang] || LOCALES.en;
    document.documentElement.lang = l.tag;
    document.documentElement.dir = l.dir;
    numberFormats.clear();
    document.title = t("title");
    for (const [id, key] of [["skip", "skip"], ["nav-trends", "nav_trends"], ["nav-follow-ups", "nav_queue"],
      ["nav-customers", "nav_customers"], ["nav-accounts", "nav_accounts"], ["lang-label", "language"], ["read-only", "read_only"], ["sign-out", "sign_out"]]) {
      document.getElementById(id).textContent = t(key);
    }
    document.getElementById("nav").setAttribute("aria-label", t("nav_label"));
    document.getElementById("read-only").title = t("read_only_hint");
  }

  function setupShell() {
    state.lang = pickLocale();
    const select = document.getElementById("lang");
    for (const tag of Object.keys(LOCALES).sort()) {
      select.appendChild(h("option", { value: tag, selected: tag === state.lang }, LOCALES[tag].name || tag));
    }
    select.addEventListener("change", () => {
      state.lang = select.value;
      sessionStorage.setItem(LANG_STORE, select.value);
      applyLanguage();
      render(false);
    });
    document.getElementById("sign-out").addEventListener("click", () => signOut());
    document.getElementById("skip").addEventListener("click", (e) => {
      e.preventDefault();
      main().focus();
    });
    window.addEventListener("hashchange", () => render(true));
    let width = window.innerWidth;
    window.addEventListener("resize", () => {
      if (Math.abs(window.innerWidth - width) > 40 && state.redraw) {
        width = window.innerWidth;
        state.redraw();
      }
    });
    applyLanguage();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORE);
    state.key = "";
    state.surveys = null;
    render(false, message);
  }

  function parseRoute() {
    const hash = location.hash.replace(/^#/, "") || "/trends";
    const [path, query] = hash.split("?");
    const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
    return { screen: parts[0] || "trends", arg: parts[1], params: new URLSearchParams(query || "") };
  }

  /** Draws the screen of the current route; `moveFocus` after a navigation by the user. */
  async function render(moveFocus, message) {
    const gen = ++state.generation;
    state.redraw = null;
    debug.calls = [];
    const signedIn = !!state.key;
    document.getElementById("nav").hidden = !signedIn;
    document.getElementById("sign-out").hidden = !signedIn;
    document.getElementById("read-only").hidden = !(signedIn && readOnly());
    const root = main();
    root.replaceChildren();
    if (!signedIn) return drawn(gen, "sign-in", signInScreen(message), moveFocus);
    const route = parseRoute();
    for (const a of document.querySelectorAll("#nav a")) {
      const current = a.dataset.screen === route.screen;
      if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    root.appendChild(h("p", { class: "muted", role: "status" }, t("loading")));
    let view;
    try {
      if (route.screen === "follow-ups") view = await queueScreen(route.params, gen);
      else if (route.screen === "customers" && route.arg) view = await customerScreen(route.arg);
      else if (route.screen === "customers") view = await customersScreen();
      else if (route.screen === "accounts" && route.arg) view = await accountScreen(route.arg);
      else if (route.screen === "accounts") view = await accountsScreen();
      else view = await trendsScreen(route.params, gen);
    } catch (e) {
      if (gen !== state.generation) return;
      view = h("div", { class: "panel" }, h("p", { class: "error", role: "alert" }, t("error", { message: e.message })),
        h("button", { type: "button", onclick: () => render(false) }, t("retry")));
    }
    drawn(gen, route.screen, view, moveFocus);
  }

  function drawn(gen, screen, view, moveFocus) {
    if (gen !== state.generation || !view) return;
    const root = main();
    root.replaceChildren(view);
    document.body.dataset.screen = screen;
    performance.mark("rapport:screen");
    if (!state.firstDrawn && screen !== "sign-in") {
      state.firstDrawn = true;
      performance.mark("rapport:first-screen");
    }
    if (moveFocus) {
      const h1 = root.querySelector("h1");
      if (h1) { h1.setAttribute("tabindex", "-1"); h1.focus(); }
    }
  }

  // ---------------------------------------------------------------- sign in

  function signInScreen(message) {
    const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "key-help" });
    const error = h("p", { class: "error", role: "alert", id: "key-error" }, message || "");
    const button = h("button", { type: "submit", class: "primary" }, t("sign_in"));
    const form = h("form", { novalidate: true },
      h("label", { for: "key" }, t("key_label")), input, button, error);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      error.textContent = "";
      if (!key) { error.textContent = t("key_missing"); return input.focus(); }
      if (key.startsWith("rk_pub_")) { error.textContent = t("key_publishable"); return input.focus(); }
      button.disabled = true;
      state.key = key;
      try {
        await surveys();
      } catch (err) {
        state.key = "";
        state.surveys = null;
        button.disabled = false;
        error.textContent = t("key_refused", { message: err.message });
        return input.focus();
      }
      sessionStorage.setItem(KEY_STORE, key);
      if (!location.hash || location.hash === "#") location.hash = "#/trends";
      render(true);
    });
    setTimeout(() => input.focus(), 0);
    return h("section", { class: "panel signin", "aria-labelledby": "signin-h" },
      h("h1", { id: "signin-h" }, t("sign_in_heading")),
      h("p", { id: "key-help" }, t("sign_in_body")), form);
  }

  // ---------------------------------------------------------------- trends

  const PER = { day: "INTERVAL_DAY", week: "INTERVAL_WEEK", month: "INTERVAL_MONTH" };
  const RANGES = [30, 90, 180, 365];

  function parseSegment(text) {
    const out = [];
    for (const part of String(text || "").split(",")) {
      if (!part.trim()) continue;
      const i = part.indexOf("=");
      if (i <= 0) return null;
      out.push([part.slice(0, i).trim(), part.slice(i + 1).trim()]);
    }
    return out;
  }

  async function trendsScreen(params, gen) {
    const all = await surveys();
    const live = all.filter((x) => !x.archived);
    const kinds = KINDS.filter((k) => all.some((x) => kindOf(x.kind) === k));
    const scope = params.get("scope") || (kinds.length ? `kind:${kinds[0]}` : "");
    const per = PER[params.get("per")] ? params.get("per") : "week";
    const days = RANGES.includes(Number(params.get("days"))) ? Number(params.get("days")) : 90;
    const seg = params.get("seg") || "";
    const heading = h("h1", {}, t("trends_heading"));
    const controls = trendControls({ scope, per, days, seg, kinds, surveys: live });
    if (!scope) return h("div", {}, heading, h("p", { class: "panel" }, t("no_surveys")));

    const [scopeKind, scopeId] = scope.split(/:(.*)/s);
    const q = new URLSearchParams();
    q.set("interval", PER[per]);
    const end = new Date();
    q.set("startTime", new Date(end.getTime() - days * 86400000).toISOString());
    q.set("endTime", end.toISOString());
    const segment = parseSegment(seg) || [];
    for (const [k, v] of segment) q.append(`filter[${k}]`, v);
    let path;
    if (scopeKind === "survey") path = `/v1/surveys/${enc(scopeId)}/metrics?${q}`;
    else { q.set("kind", `SURVEY_KIND_${scopeId}`); path = `/v1/metrics?${q}`; }
    const m = await api("GET", path);
    if (gen !== state.generation) return null;

    const kind = kindOf((m.definition || {}).kind) || scopeId;
    const summary = m.summary || {};
    const domain = kind === "NPS" ? [-100, 100] : [0, 100];
    const points = (m.series || []).map((p) => {
      const sm = p.summary || {};
      const iv = sm.headlineInterval || {};
      return {
        start: p.startTime, end: p.endTime, label: periodLabel(p.startTime, per), n: Number(sm.n || 0),
        value: sm.headline, lower: iv.lower, upper: iv.upper, buckets: sm.bucketCounts || [],
      };
    });
    const signed = kind === "NPS";
    const def = m.definition || {};
    const definition = [def.formula, def.intervalMethod].filter(Boolean).join(" — ");
    const iv = summary.headlineInterval || {};

    const headline = h("section", { class: "panel", "aria-labelledby": "hl-h" },
      h("h2", { id: "hl-h" }, t("headline", { kind })),
      summary.headline === undefined ? h("p", {}, t("no_answers")) : h("div", { class: "headline" },
        h("span", { class: "value", "data-testid": "headline" }, num(summary.headline, 1, signed)),
        term(t("interval_95", { lower: num(iv.lower, 1, signed), upper: num(iv.upper, 1, signed) }), def.intervalMethod),
        h("span", { "data-testid": "n" }, t("n", { n: int(summary.n) })),
        summary.mean !== undefined ? h("span", { class: "muted" }, t("mean", { mean: num(summary.mean, 2) })) : null),
      h("p", { class: "muted" }, term(t("definition"), definition)));

    const chartBox = h("div", { class: "chart" });
    const intervalName = t(per);
    const drawChart = () => {
      chartBox.replaceChildren(lineChart({ points, domain, signed, kind, per: intervalName, width: chartBox.clientWidth || main().clientWidth - 30 }));
    };
    const trend = h("section", { class: "panel", "aria-labelledby": "tr-h" },
      h("h2", { id: "tr-h" }, t("chart_heading", { kind, interval: intervalName })),
      chartBox,
      tableAlternative(t("chart_heading", { kind, interval: intervalName }),
        [t("col_period"), { text: t("col_n"), num: true }, { text: kind, num: true }, { text: t("col_lower"), num: true },
          { text: t("col_upper"), num: true }, ...bucketOrder(kind).map((b) => ({ text: t(`bucket_${b}`), num: true }))],
        points.map((p) => Object.assign([periodLabel(p.start, per === "month" ? "month" : "day"), { text: int(p.n), num: true },
          { text: num(p.value, 1, signed), num: true }, { text: num(p.lower, 1, signed), num: true }, { text: num(p.upper, 1, signed), num: true },
          ...bucketOrder(kind).map((b) => ({ text: int(bucketCount(p.buckets, b)), num: true }))], { attrs: { "data-start": p.start } }))));

    const view = h("div", {}, heading, controls,
      segment.length ? h("p", { class: "muted" }, t("segment_active", { segment: segment.map(([k, v]) => `${k} = ${v}`).join(", ") })) : null,
      h("div", { class: "grid" }, headline, bucketPanel(kind, summary)), trend,
      funnelPanel(m.funnel || {}),
      comparePanel({ scopeKind, scopeId, points, segment, per, kind, gen }),
      themesPanel({ scopeKind, scopeId, q, segment, gen }));
    state.redraw = drawChart;
    // Drawn once the box is in the page and has a width.
    requestAnimationFrame(() => { if (gen === state.generation) drawChart(); });
    drawChart();
    return view;
  }

  /** The scope's part of a JSON route: `/v1/surveys/<id>/<what>` or `/v1/<what>` (kind given apart). */
  const scopedPath = (scopeKind, scopeId, what) => (scopeKind === "survey" ? `/v1/surveys/${enc(scopeId)}/${what}` : `/v1/${what}`);

  /** A panel filled after the screen is drawn (its call does not hold the chart back). */
  function laterPanel(id, heading, testid, fill, gen) {
    const body = h("div", {}, h("p", { class: "muted", role: "status" }, t("loading")));
    const panel = h("section", { class: "panel", "aria-labelledby": id, "data-testid": testid }, h("h2", { id }, heading), body);
    Promise.resolve().then(fill).then((nodes) => {
      if (gen === state.generation) body.replaceChildren(...[nodes].flat().filter(Boolean));
    }, (e) => {
      if (gen === state.generation) body.replaceChildren(h("p", { class: "error" }, t("error", { message: e.message })));
    });
    return panel;
  }

  /** "Is this change real?": the last two periods with answers, compared by CompareSurveyMetrics. */
  function comparePanel({ scopeKind, scopeId, points, segment, per, kind, gen }) {
    const withAnswers = points.filter((p) => p.n > 0);
    const [a, b] = withAnswers.slice(-2);
    return laterPanel("cm-h", t("compare_heading"), "compare", async () => {
      if (!b) return h("p", { class: "muted" }, t("compare_too_few"));
      const filter = Object.fromEntries(segment);
      const sample = (p) => ({ startTime: p.start, endTime: p.end, filter, label: t("compare_label", { period: periodLabel(p.start, per === "month" ? "month" : "day") }) });
      const body = { first: sample(a), second: sample(b) };
      if (scopeKind !== "survey") body.kind = `SURVEY_KIND_${scopeId}`;
      const r = await api("POST", scopedPath(scopeKind, scopeId, "metrics:compare"), body);
      const d = r.headline || {};
      const iv = d.interval || {};
      const verdict = String(d.verdict || "CHANGE_VERDICT_NOT_ENOUGH_DATA").replace("CHANGE_VERDICT_", "").toLowerCase();
      const badge = { higher: "green", lower: "red" }[verdict] || "grey";
      const signed = kind === "NPS";
      return [
        h("p", {}, t("compare_periods", { first: sample(a).label, second: sample(b).label, n1: int(a.n), n2: int(b.n) })),
        h("p", { class: "headline" }, h("span", { class: `badge ${badge}`, "data-testid": "verdict" }, t(`verdict_${verdict}`)),
          d.difference === undefined ? null : term(t("compare_difference", {
            difference: num(d.difference, 1, true), lower: num(iv.lower, 1, true), upper: num(iv.upper, 1, true), unit: d.unit || "",
          }), d.method)),
        d.summary ? h("p", { "data-testid": "verdict-sentence" }, d.summary) : null,
        signed ? null : h("p", { class: "muted" }, t("compare_share_note")),
      ];
    }, gen);
  }

  /** Comment themes: terms over-represented in unhappy against happy comments, with z and counts. */
  function themesPanel({ scopeKind, scopeId, q, segment, gen }) {
    return laterPanel("th-h", t("themes_heading"), "themes", async () => {
      const tq = new URLSearchParams();
      tq.set("startTime", q.get("startTime"));
      tq.set("endTime", q.get("endTime"));
      tq.set("limit", "10");
      for (const [k, v] of segment) tq.append(`filter[${k}]`, v);
      if (scopeKind !== "survey") tq.set("kind", `SURVEY_KIND_${scopeId}`);
      const r = await api("GET", `${scopedPath(scopeKind, scopeId, "themes")}?${tq}`);
      const side = (title, list, testid) => h("div", { "data-testid": testid }, h("h3", {}, title),
        (list || []).length ? table(title, [t("col_term"), { text: t("col_z"), num: true }, { text: t("col_unhappy"), num: true }, { text: t("col_happy"), num: true }],
          list.map((x) => [{ node: h("span", { class: "theme-term" }, x.term || "") }, { text: num(x.zScore || 0, 2, true), num: true },
            { text: int(x.unhappyComments), num: true }, { text: int(x.happyComments), num: true }]))
          : h("p", { class: "muted" }, t("none")));
      return [
        h("p", { class: "muted" }, t("themes_counts", { unhappy: int(r.unhappyComments), happy: int(r.happyComments) }), " ",
          term(t("definition"), r.definition)),
        h("div", { class: "grid" }, side(t("themes_unhappy"), r.unhappyThemes, "themes-unhappy"), side(t("themes_happy"), r.happyThemes, "themes-happy")),
        h("p", { class: "muted" }, t("themes_note")),
      ];
    }, gen);
  }

  function trendControls({ scope, per, days, seg, kinds, surveys: list }) {
    const scopeSel = h("select", { id: "f-scope", name: "scope" },
      kinds.map((k) => h("option", { value: `kind:${k}`, selected: scope === `kind:${k}` }, t("scope_kind", { kind: k }))),
      list.map((x) => h("option", { value: `survey:${x.id}`, selected: scope === `survey:${x.id}` }, `${x.name || x.question} (${kindOf(x.kind)})`)));
    const perSel = h("select", { id: "f-per", name: "per" },
      Object.keys(PER).map((p) => h("option", { value: p, selected: p === per }, t(p))));
    const daysSel = h("select", { id: "f-days", name: "days" },
      RANGES.map((d) => h("option", { value: d, selected: d === days }, t("last_days", { n: d }))));
    const segInput = h("input", { id: "f-seg", name: "seg", value: seg, placeholder: "plan=enterprise", "aria-describedby": "f-seg-hint", autocomplete: "off" });
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel controls", "aria-label": t("filters") },
      h("label", { for: "f-scope" }, t("scope"), scopeSel),
      h("label", { for: "f-per" }, t("interval"), perSel),
      h("label", { for: "f-days" }, t("range"), daysSel),
      h("label", { for: "f-seg", class: "wide" }, t("segment"), segInput, h("span", { class: "hint", id: "f-seg-hint" }, t("segment_hint"))),
      h("button", { type: "submit", class: "primary" }, t("apply")), error);
    const go = () => {
      if (parseSegment(segInput.value) === null) { error.textContent = t("segment_invalid"); return segInput.focus(); }
      const q = new URLSearchParams({ scope: scopeSel.value, per: perSel.value, days: daysSel.value });
      if (segInput.value.trim()) q.set("seg", segInput.value.trim());
      location.hash = `#/trends?${q}`;
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); go(); });
    for (const sel of [scopeSel, perSel, daysSel]) sel.addEventListener("change", go);
    return form;
  }

  const BUCKETS = { NPS: ["promoter", "passive", "detractor"], CSAT: ["satisfied", "unsatisfied"], CES: ["agree", "not_agree"] };
  const bucketOrder = (kind) => BUCKETS[kind] || [];
  const bucketCount = (counts, b) => {
    const hit = (counts || []).find((c) => c.bucket === `BUCKET_${b.toUpperCase()}`);
    return hit ? Number(hit.count || 0) : 0;
  };

  /** The line with its 95 % band, n under each point, and an accessible name. */
  function lineChart({ points, domain, signed, kind, per, width }) {
    const W = Math.max(300, Math.min(1100, Math.round(width || 600)));
    const H = W < 500 ? 230 : 270;
    const m = { l: 44, r: 14, t: 14, b: 50 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const withData = points.filter((p) => p.value !== undefined);
    let lo = domain[0];
    let hi = domain[1];
    if (withData.length) {
      lo = Math.max(domain[0], Math.floor((Math.min(...withData.map((p) => p.lower ?? p.value)) - 5) / 10) * 10);
      hi = Math.min(domain[1], Math.ceil((Math.max(...withData.map((p) => p.upper ?? p.value)) + 5) / 10) * 10);
      if (hi - lo < 20) { hi = Math.min(domain[1], lo + 20); lo = Math.max(domain[0], hi - 20); }
    }
    const y = (v) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
    const step = pw / Math.max(1, points.length);
    const x = (i) => m.l + step * (i + 0.5);
    const titleId = uid("chart-title");
    const descId = uid("chart-desc");
    const last = withData[withData.length - 1];
    const title = t("chart_title", { kind, interval: per });
    const desc = !withData.length ? t("chart_empty") : t("chart_desc", {
      points: points.length, start: points[0].label, end: points[points.length - 1].label,
      value: num(last.value, 1, signed), lower: num(last.lower, 1, signed), upper: num(last.upper, 1, signed), n: int(last.n),
    });
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${titleId} ${descId}`, "data-points": points.length },
      s("title", { id: titleId }, title), s("desc", { id: descId }, desc));
    // Y grid and labels.
    const span = hi - lo;
    const tick = span > 100 ? 50 : span > 40 ? 20 : 10;
    for (let v = Math.ceil(lo / tick) * tick; v <= hi; v += tick) {
      svg.appendChild(s("line", { class: v === 0 && signed ? "axis" : "grid-line", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
      svg.appendChild(s("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, num(v, 0, signed)));
    }
    svg.appendChild(s("line", { class: "axis", x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
    // Band and line, in runs of consecutive periods with answers.
    const runs = [];
    let run = [];
    points.forEach((p, i) => {
      if (p.value === undefined) { if (run.length) runs.push(run); run = []; } else run.push(i);
    });
    if (run.length) runs.push(run);
    for (const r of runs) {
      const upper = r.map((i) => `${x(i)},${y(points[i].upper ?? points[i].value)}`);
      const lower = r.slice().reverse().map((i) => `${x(i)},${y(points[i].lower ?? points[i].value)}`);
      if (r.length === 1) {
        const i = r[0];
        svg.appendChild(s("rect", { class: "band", x: x(i) - 4, width: 8, y: y(points[i].upper ?? points[i].value), height: Math.max(1, y(points[i].lower ?? points[i].value) - y(points[i].upper ?? points[i].value)) }));
      } else {
        svg.appendChild(s("polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
      }
      svg.appendChild(s("polyline", { class: "line", points: r.map((i) => `${x(i)},${y(points[i].value)}`).join(" ") }));
    }
    // Points, period labels and n, thinned so that labels never overlap.
    const every = Math.max(1, Math.ceil(44 / step));
    svg.appendChild(s("text", { class: "n", x: 2, y: H - 8 }, "n"));
    points.forEach((p, i) => {
      if (p.value !== undefined) {
        svg.appendChild(s("circle", { class: "dot", cx: x(i), cy: y(p.value), r: 3.5 },
          s("title", {}, `${p.label}: ${num(p.value, 1, signed)} (95 %: ${num(p.lower, 1, signed)} – ${num(p.upper, 1, signed)}), n = ${int(p.n)}`)));
      }
      if (i % every === 0) {
        svg.appendChild(s("text", { x: x(i), y: H - 28, "text-anchor": "middle" }, p.label));
        svg.appendChild(s("text", { class: "n", x: x(i), y: H - 8, "text-anchor": "middle" }, int(p.n)));
      }
    });
    return svg;
  }

  function bucketPanel(kind, summary) {
    const order = bucketOrder(kind);
    const total = Number(summary.n || 0);
    const counts = order.map((b) => bucketCount(summary.bucketCounts, b));
    const W = 400;
    const svg = s("svg", { viewBox: `0 0 ${W} 28`, role: "img", "aria-label": t("buckets_label", {
      split: order.map((b, i) => `${t(`bucket_${b}`)} ${total ? num((counts[i] / total) * 100, 1) : 0} %`).join(", "),
    }) });
    let at = 0;
    order.forEach((b, i) => {
      const w = total ? (counts[i] / total) * W : 0;
      if (w > 0) svg.appendChild(s("rect", { class: `bucket-${b.replace("_", "-")}`, x: at, y: 0, width: w, height: 28 }, s("title", {}, `${t(`bucket_${b}`)}: ${int(counts[i])}`)));
      at += w;
    });
    if (!total) svg.appendChild(s("rect", { class: "bar-3", x: 0, y: 0, width: W, height: 28, opacity: 0.3 }));
    return h("section", { class: "panel", "aria-labelledby": "bk-h" }, h("h2", { id: "bk-h" }, t("buckets_heading")),
      h("div", { class: "chart" }, svg),
      h("ul", { class: "flags" }, order.map((b, i) => h("li", { class: "badge" }, `${t(`bucket_${b}`)}: ${int(counts[i])}`))),
      tableAlternative(t("buckets_heading"), [t("col_bucket"), { text: t("col_count"), num: true }, { text: t("col_share"), num: true }],
        order.map((b, i) => [t(`bucket_${b}`), { text: int(counts[i]), num: true }, { text: total ? num((counts[i] / total) * 100, 1) + " %" : t("none"), num: true }])));
  }

  function funnelPanel(f) {
    const rows = [["issued", f.issued], ["suppressed", f.suppressed], ["answered", f.answered], ["expired", f.expired], ["pending", f.pending]]
      .map(([k, v]) => [k, Number(v || 0)]);
    const max = Math.max(1, ...rows.map((r) => r[1]));
    const W = 360;
    const rowH = 26;
    const svg = s("svg", { class: "compact", viewBox: `0 0 ${W} ${rows.length * rowH}`, role: "img",
      "aria-label": t("funnel_label", { funnel: rows.map(([k, v]) => `${t(`funnel_${k}`)} ${int(v)}`).join(", ") }) });
    rows.forEach(([k, v], i) => {
      svg.appendChild(s("text", { x: 0, y: i * rowH + 17 }, t(`funnel_${k}`)));
      svg.appendChild(s("rect", { class: `bar-${i + 1}`, x: 120, y: i * rowH + 5, width: Math.max(v ? 2 : 0, ((W - 180) * v) / max), height: rowH - 10 }));
      svg.appendChild(s("text", { x: 126 + ((W - 180) * v) / max, y: i * rowH + 17 }, int(v)));
    });
    const byRule = (f.suppressedByRule || []).map((r) => [t("suppressed_by", { rule: t(`rule_${String(r.rule || "").replace("ELIGIBILITY_RULE_", "").toLowerCase()}`) }), { text: int(r.count), num: true }]);
    return h("section", { class: "panel", "aria-labelledby": "fn-h" }, h("h2", { id: "fn-h" }, t("funnel_heading")),
      h("div", { class: "chart" }, svg),
      h("p", {}, t("response_rate", { rate: pct(f.responseRate) })),
      tableAlternative(t("funnel_heading"), [t("col_stage"), { text: t("col_count"), num: true }],
        [...rows.map(([k, v]) => [t(`funnel_${k}`), { text: int(v), num: true }]), ...byRule]));
  }

  // ---------------------------------------------------------------- follow-up queue

  async function queueScreen(params) {
    const overdue = params.get("overdue") === "1";
    const assignee = params.get("assignee") || "";
    const query = (status) => {
      const q = new URLSearchParams({ status, orderBy: "due_time", pageSize: "100" });
      if (overdue) q.set("overdue", "true");
      if (assignee) q.set("assignee", assignee);
      return `/v1/follow-ups?${q}`;
    };
    const [open, acked] = await Promise.all([
      api("GET", query("FOLLOW_UP_STATUS_OPEN")),
      api("GET", query("FOLLOW_UP_STATUS_ACKNOWLEDGED")),
      surveys(),
    ]);
    const items = [...(open.followUps || []), ...(acked.followUps || [])]
      .sort((a, b) => Date.parse(a.dueTime || 0) - Date.parse(b.dueTime || 0) || a.id.localeCompare(b.id));
    const more = !!(open.nextPageToken || acked.nextPageToken);

    const overdueBox = h("input", { type: "checkbox", id: "q-overdue", checked: overdue });
    const assigneeInput = h("input", { id: "q-assignee", value: assignee, autocomplete: "off" });
    const filters = h("form", { class: "panel controls", "aria-label": t("filters") },
      h("label", { for: "q-assignee" }, t("assignee_filter"), assigneeInput),
      h("label", { for: "q-overdue", class: "check" }, overdueBox, " ", t("only_overdue")),
      h("button", { type: "submit" }, t("apply")));
    const go = () => {
      const q = new URLSearchParams();
      if (overdueBox.checked) q.set("overdue", "1");
      if (assigneeInput.value.trim()) q.set("assignee", assigneeInput.value.trim());
      location.hash = `#/follow-ups${q.toString() ? "?" + q : ""}`;
    };
    filters.addEventListener("submit", (e) => { e.preventDefault(); go(); });
    overdueBox.addEventListener("change", go);

    let who = null;
    if (!readOnly()) {
      const author = h("input", { id: "q-author", value: sessionStorage.getItem(AUTHOR_STORE) || "", autocomplete: "email", maxlength: "200" });
      author.addEventListener("change", () => sessionStorage.setItem(AUTHOR_STORE, author.value.trim()));
      who = h("div", { class: "panel" }, h("label", { for: "q-author" }, t("author_label"), author));
    } else {
      who = h("p", { class: "panel muted" }, t("read_only_hint"));
    }
    const list = h("ul", { class: "queue", "aria-label": t("queue_heading") }, items.map((f) => followUpItem(f)));
    return h("div", {}, h("h1", {}, t("queue_heading")), h("p", { class: "muted" }, t("queue_intro")), filters, who,
      items.length ? list : h("p", { class: "panel" }, t("queue_empty")),
      more ? h("p", { class: "muted" }, t("queue_more", { n: items.length })) : null);
  }

  const statusName = (s) => String(s || "").replace("FOLLOW_UP_STATUS_", "").toLowerCase();
  const bucketName = (b) => String(b || "").replace("BUCKET_", "").toLowerCase();
  const bucketText = (b) => (bucketName(b) && bucketName(b) !== "unspecified" ? t(`bucket_${bucketName(b)}`) : t("none"));

  /** One follow-up of the queue: its answer, comment, assignee, and (unfolded) notes, the
   *  customer's latest answers and the actions. */
  function followUpItem(f, expanded) {
    const status = statusName(f.status);
    // Overdue: marked so by rapport, or past due while still to do (rapport's SLA sweep
    // marks it on its next round).
    const late = f.overdue || ((status === "open" || status === "acknowledged") && Date.parse(f.dueTime) < Date.now());
    const li = h("li", { "data-follow-up": f.id, "data-due": f.dueTime, class: late ? "is-overdue" : undefined });
    const bodyId = uid("fu");
    const answer = f.answer || {};
    const toggle = h("button", { type: "button", "aria-expanded": expanded ? "true" : "false", "aria-controls": bodyId }, t("details"));
    const body = h("div", { class: "fu-body", id: bodyId, hidden: !expanded });
    const headId = uid("fu-h");
    li.setAttribute("aria-labelledby", headId);
    li.append(
      h("div", { class: "fu-head" },
        h("h2", { id: headId }, h("span", { class: "fu-score" }, t("score", { score: answer.score ?? 0 })), " ",
          h("span", { class: "muted" }, bucketText(answer.bucket))),
        h("span", { class: "badge", "data-status": status }, t(`status_${status}`)),
        late ? h("span", { class: "badge overdue" }, t("overdue")) : null,
        h("span", {}, term(t("due", { time: relative(f.dueTime) }), date(f.dueTime, true))),
        h("span", { class: "muted" }, t(`priority_${String(f.priority || "PRIORITY_NORMAL").replace("PRIORITY_", "").toLowerCase()}`))),
      h("p", { class: "muted" }, h("a", { href: `#/customers/${enc(f.customerId)}` }, t("customer_link", { id: f.customerId })), " · ",
        surveyName(f.surveyId), " · ", date(answer.recordTime, true)),
      answer.comment ? h("blockquote", { class: "comment", "data-testid": "comment" }, answer.comment) : h("p", { class: "muted" }, t("no_comment")),
      h("p", {}, f.assignee ? t("assigned_to", { name: f.assignee }) : t("unassigned"), " · ",
        t("notes_count", { n: (f.entries || []).filter((e) => e.kind === "ENTRY_KIND_NOTE").length })),
      toggle, body);
    let loaded = false;
    const fill = async () => {
      if (loaded) return;
      loaded = true;
      body.replaceChildren(h("p", { class: "muted" }, t("loading")));
      let latest = null;
      try {
        latest = await api("GET", `/v1/responses?customerId=${enc(f.customerId)}&pageSize=5`);
      } catch (e) {
        latest = { error: e.message };
      }
      body.replaceChildren(historyBlock(f), latestBlock(latest), readOnly() ? null : actionsBlock(f, li));
    };
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      body.hidden = !open;
      if (open) fill();
    });
    if (expanded) fill();
    return li;
  }

  function historyBlock(f) {
    const entries = f.entries || [];
    return h("section", {}, h("h3", {}, t("history")),
      entries.length ? h("ul", { class: "entries" }, entries.map((e) => h("li", {},
        h("span", { class: "muted" }, date(e.time, true), " · ", e.author || t("rapport_author"), " · "),
        entryText(e)))) : h("p", { class: "muted" }, t("none")));
  }
  function entryText(e) {
    switch (e.kind) {
      case "ENTRY_KIND_STATUS_CHANGE":
        return [t("entry_status", { from: t(`status_${statusName(e.fromStatus)}`), to: t(`status_${statusName(e.toStatus)}`) }), e.body ? `: ${e.body}` : ""];
      case "ENTRY_KIND_ASSIGNMENT":
        return t("entry_assignment", { name: e.body || t("unassigned") });
      case "ENTRY_KIND_PRIORITY":
        return [t("entry_priority"), e.body ? `: ${e.body}` : ""];
      default:
        return e.body || "";
    }
  }
  function latestBlock(latest) {
    if (latest.error) return h("p", { class: "error" }, t("error", { message: latest.error }));
    const rs = (latest.responses || []).slice().sort((a, b) => (b.recordTime || "").localeCompare(a.recordTime || ""));
    return h("section", {}, h("h3", {}, t("latest_scores")),
      rs.length ? table(t("latest_scores"), [t("col_date"), t("col_survey"), { text: t("col_score"), num: true }, t("col_bucket")],
        rs.map((r) => [date(r.recordTime), surveyName(r.surveyId), { text: String(r.score ?? 0), num: true }, bucketText(r.bucket)]))
        : h("p", { class: "muted" }, t("none")));
  }

  function actionsBlock(f, li) {
    const status = statusName(f.status);
    const active = status === "open" || status === "acknowledged";
    const msg = h("p", { role: "status", class: "muted" });
    const act = async (name, action, button) => {
      const author = (document.getElementById("q-author") || {}).value || sessionStorage.getItem(AUTHOR_STORE) || "";
      button.disabled = true;
      msg.className = "muted";
      msg.textContent = t("saving");
      try {
        const updated = await api("POST", `/v1/follow-ups/${enc(f.id)}:update`, { author: author.trim(), ...action });
        const fresh = followUpItem(updated, true);
        li.replaceWith(fresh);
        announce(t("done", { action: t(name) }));
        const first = fresh.querySelector(".fu-body button, .fu-body input, .fu-body textarea");
        (fresh.querySelector("[aria-controls]") || first).focus();
      } catch (e) {
        button.disabled = false;
        msg.className = "error";
        msg.setAttribute("role", "alert");
        msg.textContent = t("error", { message: e.message });
      }
    };
    const form = (name, label, field, build) => {
      const id = uid("a");
      const input = field === "textarea" ? h("textarea", { id, rows: "2", maxlength: "5000" }) : h("input", { id, maxlength: "200", value: name === "assign" ? f.assignee || "" : "" });
      const button = h("button", { type: "submit" }, t(name));
      const el = h("form", { "data-action": name }, h("label", { for: id }, t(label)), input, h("div", { class: "row" }, button));
      el.addEventListener("submit", (e) => { e.preventDefault(); act(name, build(input.value.trim()), button); });
      return el;
    };
    const forms = [];
    if (status === "open") {
      const b = h("button", { type: "button", class: "primary", "data-action": "acknowledge" }, t("acknowledge"));
      b.addEventListener("click", () => act("acknowledge", { acknowledge: {} }, b));
      forms.push(h("div", { class: "row" }, b));
    }
    forms.push(form("assign", "assignee", "input", (v) => ({ assign: { assignee: v } })));
    forms.push(form("add_note", "note", "textarea", (v) => ({ addNote: { body: v } })));
    if (active) {
      forms.push(form("resolve", "resolution", "textarea", (v) => ({ resolve: { resolution: v } })));
      forms.push(form("dismiss", "reason", "input", (v) => ({ dismiss: { reason: v } })));
    }
    return h("section", {}, h("h3", {}, t("actions")), h("div", { class: "actions" }, forms), msg);
  }

  // ---------------------------------------------------------------- customers

  function customerSearch(value) {
    const input = h("input", { id: "c-id", name: "customer", value: value || "", autocomplete: "off", required: true });
    const form = h("form", { class: "panel controls", role: "search" },
      h("label", { for: "c-id", class: "wide" }, t("customer_search"), input),
      h("button", { type: "submit", class: "primary" }, t("show")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (input.value.trim()) location.hash = `#/customers/${enc(input.value.trim())}`;
    });
    return form;
  }

  async function customersScreen() {
    const r = await api("GET", "/v1/customers?pageSize=50");
    const list = r.customers || [];
    return h("div", {}, h("h1", {}, t("customers_heading")), customerSearch(""),
      h("section", { class: "panel", "aria-labelledby": "cl-h" }, h("h2", { id: "cl-h" }, t("customers_recent")),
        list.length ? table(t("customers_recent"), [t("col_customer"), t("col_name"), t("col_plan"), t("col_last_seen")],
          list.map((c) => [{ node: h("a", { href: `#/customers/${enc(c.customerId)}` }, c.customerId) },
            (c.traits || {}).name || "", (c.traits || {}).plan || "", c.lastSeenDate || t("none")]))
          : h("p", { class: "muted" }, t("none"))));
  }

  /** A measure's value in its unit (counts as integers, ratios as percentages, money in its currency). */
  function measureValue(m, currency) {
    if (!m) return t("none");
    if (m.count !== undefined) {
      if (/minor units/.test(m.unit || "")) return money(Number(m.count), currency);
      return int(m.count);
    }
    if (m.value === undefined) return t("none");
    const v = Number(m.value);
    const unit = m.unit || "";
    if (/minor units/.test(unit)) return money(v, currency);
    if (unit === "ratio") return num(v * 100, 1) + " %";
    if (unit === "seconds") return num(v / 60, 1) + " min";
    return num(v, 1);
  }
  function money(minor, currency) {
    try {
      return new Intl.NumberFormat(state.lang, { style: "currency", currency: currency || "USD" }).format(minor / 100);
    } catch (_) {
      return `${num(minor / 100, 2)} ${currency || ""}`;
    }
  }
  /** Rows of a definition list: [label, measure] pairs, the definition on hover and focus. */
  function measures(pairs, currency) {
    return h("dl", { class: "measures" }, pairs.filter(Boolean).map(([label, m, text]) => [
      h("dt", {}, m && m.definition ? term(label, m.definition) : label),
      h("dd", {}, text !== undefined ? text : measureValue(m, currency))]));
  }
  /** A table of one measure per window (7, 30, 90 days) per row. */
  function windowTable(caption, windows, rows, currency) {
    const sorted = (windows || []).slice().sort((a, b) => (a.windowDays || 0) - (b.windowDays || 0));
    return table(caption, [t("col_measure"), ...sorted.map((w) => ({ text: t("window", { n: w.windowDays }), num: true }))],
      rows.map(([label, pick, text]) => {
        const sample = sorted.map(pick).find((m) => m && m.definition);
        return [{ node: sample ? term(label, sample.definition) : label },
          ...sorted.map((w) => ({ text: text ? text(w) : measureValue(pick(w), currency), num: true }))];
      }));
  }

  async function customerScreen(id) {
    const [profile, answers, customer] = await Promise.all([
      api("GET", `/v1/customers/${enc(id)}/profile`),
      api("GET", `/v1/responses?customerId=${enc(id)}&pageSize=100`),
      api("GET", `/v1/customers/${enc(id)}`).catch(() => ({})),
      surveys(),
    ]);
    const traits = customer.traits || {};
    const health = profile.health || {};
    const band = String(health.band || "HEALTH_BAND_UNKNOWN").replace("HEALTH_BAND_", "").toLowerCase();
    const voice = profile.voice || {};
    const activity = profile.activity || {};
    const score = profile.engagementScore || {};
    const value = profile.value || {};
    const currency = value.currency;
    const comp = (k) => t(`component_${String(k || "").replace("HEALTH_COMPONENT_KIND_", "").toLowerCase()}`);

    const healthPanel = h("section", { class: "panel", "aria-labelledby": "he-h", "data-testid": "health" },
      h("h2", { id: "he-h" }, t("health")),
      h("div", { class: "headline" },
        h("span", { class: "value" }, measureValue(health.score)),
        h("span", { class: `badge ${band}` }, t(`band_${band}`))),
      measures([[t("health_change"), health.change], [t("health_before"), health.score30DaysBefore],
        [t("components_with_data"), null, t("of", { n: health.componentsWithData || 0, total: (health.components || []).length, min: health.minComponents || 0 })]]),
      h("h3", {}, t("components")),
      table(t("components"), [t("col_component"), { text: t("col_value"), num: true }, { text: t("col_weight"), num: true }, { text: t("col_contribution"), num: true }],
        (health.components || []).map((c) => [{ node: c.value && c.value.definition ? term(comp(c.kind), c.value.definition) : comp(c.kind) },
          { text: measureValue(c.value), num: true }, { text: num(c.weight || 0, 2), num: true },
          { text: c.contribution === undefined ? t("none") : num(c.contribution, 1), num: true }])),
      h("h3", {}, t("risks")),
      (health.risks || []).length ? h("ul", { class: "flags" }, health.risks.map((r) => h("li", { class: "badge red" },
        t(`risk_${String(r).replace("RISK_FLAG_", "").toLowerCase()}`)))) : h("p", { class: "muted" }, t("no_risks")));

    const scorePanel = h("section", { class: "panel", "aria-labelledby": "sc-h" }, h("h2", { id: "sc-h" }, t("score_heading")),
      measures([[t("engagement_score"), score.score], [t("percentile"), score.percentile],
        [t("ranked"), null, int(score.rankedCustomers)]]));

    const latest = voice.latestNps;
    const voicePanel = h("section", { class: "panel", "aria-labelledby": "vo-h" }, h("h2", { id: "vo-h" }, t("voice")),
      measures([[t("latest_nps"), null, latest ? `${latest.score ?? 0} · ${bucketText(latest.bucket)} · ${date(latest.recordTime)}` : t("none")],
        [t("open_follow_ups"), voice.openFollowUps], [t("overdue_follow_ups"), voice.overdueFollowUps],
        [t("eligibility"), null, voice.eligibleNow ? t("eligible_now") : voice.nextEligibleTime ? t("next_eligible", { time: date(voice.nextEligibleTime) }) : t("not_eligible")]]),
      windowTable(t("voice"), voice.windows, [
        [t("nps_answers"), (w) => w.npsAnswers], [t("csat_mean"), (w) => w.csatMean], [t("ces_mean"), (w) => w.cesMean],
        [t("invitations"), (w) => w.invitations], [t("response_rate_label"), (w) => w.responseRate]]));

    const lifecycle = (w) => t(`lifecycle_${String(w.lifecycle || "LIFECYCLE_STATE_NEVER_ACTIVE").replace("LIFECYCLE_STATE_", "").toLowerCase()}`);
    const activityPanel = h("section", { class: "panel", "aria-labelledby": "ac-h" }, h("h2", { id: "ac-h" }, t("activity")),
      measures([[t("first_seen"), null, activity.firstSeenDate || t("none")], [t("last_seen"), null, activity.lastSeenDate || t("none")],
        [t("recency"), activity.recencyDays]]),
      windowTable(t("activity"), activity.windows, [
        [t("active_days"), (w) => w.activeDays], [t("stickiness"), (w) => w.stickiness], [t("sessions"), (w) => w.sessions],
        [t("mean_session"), (w) => w.meanSessionSeconds], [t("visits_per_week"), (w) => w.visitsPerWeek],
        [t("lifecycle"), () => null, lifecycle]]));

    const valuePanel = h("section", { class: "panel", "aria-labelledby": "va-h" }, h("h2", { id: "va-h" }, t("value")),
      measures([[t("lifetime_revenue"), value.lifetimeRevenue], [t("purchases"), value.lifetimePurchases],
        [t("mean_order_value"), value.meanOrderValue], [t("historical_value"), value.historicalValue],
        [t("predicted_clv"), value.predictedClv]], currency),
      windowTable(t("value"), value.windows, [[t("revenue"), (w) => w.revenue], [t("purchases"), (w) => w.purchases]], currency));

    const rs = (answers.responses || []).slice().sort((a, b) => (b.recordTime || "").localeCompare(a.recordTime || ""));
    const answersPanel = h("section", { class: "panel", "aria-labelledby": "an-h" }, h("h2", { id: "an-h" }, t("answers")),
      rs.length ? table(t("answers"), [t("col_date"), t("col_survey"), { text: t("col_score"), num: true }, t("col_bucket"), t("col_comment")],
        rs.map((r) => [date(r.recordTime), surveyName(r.surveyId), { text: String(r.score ?? 0), num: true },
          bucketText(r.bucket), { node: r.comment ? h("span", { class: "comment-cell" }, r.comment) : t("none") }]))
        : h("p", { class: "muted" }, t("none")));

    const who = [traits.name, traits.email, traits.plan && t("plan", { plan: traits.plan })].filter(Boolean);
    return h("div", {}, h("h1", {}, t("customer_heading", { id })), who.length ? h("p", { class: "muted" }, who.join(" · ")) : null,
      customerSearch(id),
      h("div", { class: "grid" }, healthPanel, h("div", {}, scorePanel, voicePanel)),
      h("div", { class: "grid" }, activityPanel, valuePanel),
      customer.accountId ? h("section", { class: "panel", "aria-labelledby": "ca-h" }, h("h2", { id: "ca-h" }, t("account_heading")),
        h("p", {}, h("a", { href: `#/accounts/${enc(customer.accountId)}` }, t("account", { id: customer.accountId })))) : null,
      answersPanel);
  }

  // ---------------------------------------------------------------- accounts

  const bandOf = (b) => String(b || "HEALTH_BAND_UNKNOWN").replace("HEALTH_BAND_", "").toLowerCase();
  const accountRisk = (f) => t(`account_risk_${String(f || "").replace("ACCOUNT_RISK_FLAG_", "").toLowerCase()}`);

  function accountSearch(value) {
    const input = h("input", { id: "a-id", name: "account", value: value || "", autocomplete: "off", required: true });
    const form = h("form", { class: "panel controls", role: "search" },
      h("label", { for: "a-id", class: "wide" }, t("account_search"), input),
      h("button", { type: "submit", class: "primary" }, t("show")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (input.value.trim()) location.hash = `#/accounts/${enc(input.value.trim())}`;
    });
    return form;
  }

  /** Accounts by health, lowest first (ListAccounts). */
  async function accountsScreen() {
    const r = await api("GET", "/v1/accounts?pageSize=50");
    const list = r.accounts || [];
    return h("div", {}, h("h1", {}, t("accounts_heading")), accountSearch(""),
      h("section", { class: "panel", "aria-labelledby": "al-h" }, h("h2", { id: "al-h" }, t("accounts_by_health")),
        list.length ? table(t("accounts_by_health"), [t("col_account"), { text: t("health"), num: true }, t("col_band"),
          { text: t("account_contacts"), num: true }, { text: "NPS", num: true }, t("risks")],
          list.map((a) => {
            const health = a.health || {};
            const voice = a.voice || {};
            const band = bandOf(health.band);
            return [{ node: h("a", { href: `#/accounts/${enc(a.accountId)}` }, a.accountId) },
              { text: measureValue(health.score), num: true }, { node: h("span", { class: `badge ${band}` }, t(`band_${band}`)) },
              { text: measureValue(voice.contacts), num: true }, { text: voice.nps && voice.nps.value !== undefined ? num(voice.nps.value, 1, true) : t("none"), num: true },
              (health.risks || []).map((x) => accountRisk(x.flag)).join(", ") || t("none")];
          }))
          : h("p", { class: "muted" }, t("none")),
        r.totalSize !== undefined ? h("p", { class: "muted" }, t("accounts_total", { n: int(r.totalSize) })) : null));
  }

  /** One account: its contacts' voice, activity, value and health (GetAccountProfile). */
  async function accountScreen(id) {
    const p = await api("GET", `/v1/accounts/${enc(id)}/profile`);
    const health = p.health || {};
    const band = bandOf(health.band);
    const voice = p.voice || {};
    const activity = p.activity || {};
    const value = p.value || {};
    const iv = voice.npsInterval || {};
    const comp = (k) => t(`account_component_${String(k || "").replace("ACCOUNT_HEALTH_COMPONENT_KIND_", "").toLowerCase()}`);
    const healthPanel = h("section", { class: "panel", "aria-labelledby": "ah-h", "data-testid": "account-health" },
      h("h2", { id: "ah-h" }, t("health")),
      h("div", { class: "headline" }, h("span", { class: "value" }, measureValue(health.score)),
        h("span", { class: `badge ${band}` }, t(`band_${band}`))),
      measures([[t("components_with_data"), null, t("of", { n: health.componentsWithData || 0, total: (health.components || []).length, min: health.minComponents || 0 })]]),
      table(t("components"), [t("col_component"), { text: t("col_value"), num: true }, { text: t("col_weight"), num: true }, { text: t("col_contribution"), num: true }],
        (health.components || []).map((c) => [{ node: c.value && c.value.definition ? term(comp(c.kind), c.value.definition) : comp(c.kind) },
          { text: measureValue(c.value), num: true }, { text: num(c.weight || 0, 2), num: true },
          { text: c.contribution === undefined ? t("none") : num(c.contribution, 1), num: true }])),
      h("h3", {}, t("risks")),
      (health.risks || []).length ? h("ul", { class: "entries" }, health.risks.map((r) => h("li", {},
        h("span", { class: "badge red" }, accountRisk(r.flag)), " ", r.detail || "",
        (r.customerIds || []).length ? [" · ", r.customerIds.map((c, i) => [i ? ", " : "", h("a", { href: `#/customers/${enc(c)}` }, c)])] : null)))
        : h("p", { class: "muted" }, t("no_risks")));
    const voicePanel = h("section", { class: "panel", "aria-labelledby": "av-h" }, h("h2", { id: "av-h" }, t("voice")),
      measures([[t("account_contacts"), voice.contacts], [t("account_respondents"), voice.respondents], [t("account_coverage"), voice.coverage],
        [t("account_nps"), voice.nps, voice.nps && voice.nps.value !== undefined
          ? `${num(voice.nps.value, 1, true)} (${t("interval_95", { lower: num(iv.lower, 1, true), upper: num(iv.upper, 1, true) })})` : t("none")],
        [t("bucket_promoter"), voice.promoters], [t("bucket_passive"), voice.passives], [t("bucket_detractor"), voice.detractors],
        [t("open_follow_ups"), voice.openFollowUps], [t("overdue_follow_ups"), voice.overdueFollowUps]]),
      (voice.detractorsByRole || []).length ? table(t("account_by_role"), [t("account_role"), { text: t("account_respondents"), num: true }, { text: t("bucket_detractor"), num: true }],
        voice.detractorsByRole.map((r) => [r.role || "", { text: int(r.respondents), num: true }, { text: int(r.detractors), num: true }])) : null);
    const activityPanel = h("section", { class: "panel", "aria-labelledby": "aa-h" }, h("h2", { id: "aa-h" }, t("activity")),
      measures([[t("account_active_contacts"), activity.activeContacts], [t("stickiness"), activity.stickiness],
        [t("active_days"), activity.activeDays], [t("account_events"), activity.events],
        [t("last_seen"), null, activity.lastSeenDate || t("none")], [t("recency"), activity.recencyDays]]));
    const valuePanel = h("section", { class: "panel", "aria-labelledby": "aw-h" }, h("h2", { id: "aw-h" }, t("value")),
      measures([[t("revenue"), value.revenue], [t("purchases"), value.purchases], [t("lifetime_revenue"), value.lifetimeRevenue],
        [t("predicted_clv"), value.predictedClv]], value.currency));
    return h("div", {}, h("h1", {}, t("account_view_heading", { id: p.accountId || id })),
      h("p", { class: "muted" }, t("account_window", { n: p.windowDays || 90, start: p.startDate || "", end: p.endDate || "" })),
      accountSearch(id),
      h("div", { class: "grid" }, healthPanel, voicePanel),
      h("div", { class: "grid" }, activityPanel, valuePanel));
  }

  // ---------------------------------------------------------------- start

  function start() {
    setupShell();
    render(false);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
