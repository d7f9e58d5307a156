/*! rapport widget: an in-app NPS / CSAT / CES survey. No dependencies, no build step.
 *
 *  <script src="https://rapport.example.com/widget.js" data-key="rk_pub_…"
 *          data-customer="crm-42" data-survey="SURVEY_ID" data-customer-hash="…"
 *          data-lang="de"></script>
 *
 *  or, from code:  rapport.show({key, customer, survey, customerHash, lang}) → Promise<{outcome}>
 *  outcome: "answered" | "dismissed" | "closed" | "not-eligible" | "already-answered" |
 *           "already-dismissed" | "error".
 *  Exactly one `rapport:close` event is dispatched on window per call, with the same object.
 *  "not-eligible" comes with `eligibility` (why not); "already-answered" and
 *  "already-dismissed" mean this customer answered or closed this survey earlier today.
 *
 *  It asks rapport whether to show the survey (IssueSurvey, eligibility applies), shows
 *  the scale with the survey's labels and branding, records the score on click (another
 *  tap changes it until the comment is sent) and the comment second, and closes.
 *  Closing it before answering is recorded (DismissInvitation). Texts follow the
 *  survey's language, else `lang`, else the browser's; right-to-left languages are laid
 *  out right to left.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  const base = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  const enc = encodeURIComponent;

  /** Fixed texts by lower-case language tag, filled in by the server (locales/). */
  const LOCALES = __RAPPORT_LOCALES__;

  /** The locale of the first of `wanted` with texts (exact tag, its language, a region of it), else English. */
  function localeFor(wanted) {
    const tags = Object.keys(LOCALES);
    for (const raw of wanted) {
      const tag = String(raw || "").trim().toLowerCase();
      if (!tag) continue;
      const primary = tag.split("-")[0];
      const hit = LOCALES[tag] || LOCALES[primary] || tags.filter((t) => t.split("-")[0] === primary).map((t) => LOCALES[t])[0];
      if (hit) return hit;
    }
    return LOCALES.en;
  }

  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));

  /** White or near-black, whichever reads better on `hex` (WCAG relative luminance). */
  function onAccent(hex) {
    const ch = (i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    const l = 0.2126 * ch(1) + 0.7152 * ch(3) + 0.0722 * ch(5);
    return 1.05 / (l + 0.05) >= (l + 0.05) / 0.066 ? "#fff" : "#1f2328";
  }

  const CSS = `
:host{all:initial}
.card{box-sizing:border-box;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
background:#fff;border:1px solid #d0d7de;border-radius:12px;padding:16px;position:relative}
.card{--accent:#0969da;--on-accent:#fff}
.float{position:fixed;inset-inline-end:16px;bottom:16px;width:min(28rem,calc(100vw - 32px));z-index:2147483000;
box-shadow:0 8px 24px rgba(31,35,40,.2)}
@media (max-width:480px){.float{inset-inline:0;bottom:0;width:100%;border-radius:12px 12px 0 0}}
.inline{border:0;padding:0;background:none;font-size:16px}
h1,h2{font-size:1.1em;line-height:1.3;margin:0 0 12px;margin-inline-end:2.75rem;font-weight:600}
.inline h1{font-size:1.4em;margin-inline-end:0}
.brand{display:flex;align-items:center;gap:8px;margin:0 0 10px;margin-inline-end:2.75rem;font-weight:600;color:#57606a}
.brand img{max-height:1.75rem;max-width:8rem}
.scale{display:grid;grid-template-columns:repeat(var(--n),minmax(0,1fr));gap:4px}
.scale button{min-width:0;min-height:2.75rem;padding:0;border:1px solid #8c959f;border-radius:6px;
background:#f6f8fa;color:inherit;font:inherit;font-weight:600;cursor:pointer}
.scale button:hover{background:#eaeef2}
.scale button[aria-pressed=true]{background:var(--accent);border-color:var(--accent);color:var(--on-accent)}
button:disabled{cursor:default;opacity:.7}
button:focus-visible,textarea:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.labels{display:flex;justify-content:space-between;gap:8px;font-size:13px;color:#57606a;margin-top:6px}
.x{position:absolute;top:6px;inset-inline-end:6px;width:2.75rem;height:2.75rem;border:0;border-radius:6px;background:none;
color:#57606a;font:22px/1 sans-serif;cursor:pointer}
.x:hover{background:#eaeef2}
label{display:block;margin-top:14px;font-weight:600}
textarea{box-sizing:border-box;width:100%;min-height:5rem;margin:6px 0 8px;padding:8px;border:1px solid #8c959f;
border-radius:6px;font:inherit;resize:vertical}
.send{min-height:2.75rem;padding:0 18px;border:0;border-radius:6px;background:var(--accent);color:var(--on-accent);font:inherit;
font-weight:600;cursor:pointer}
.msg{margin:10px 0 0;font-size:14px}
.msg:empty{margin:0}
.msg.error{color:#cf222e}
.thanks{font-weight:600;font-size:1.05em;margin:4px 0;margin-inline-end:2.75rem}`;

  /** Calls a JSON route; rejects with {status, code, message} on an error. */
  async function call(method, path, body, key) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers.Authorization = "Bearer " + key;
    const r = await fetch(base + path, {
      method, headers, credentials: "omit", mode: "cors",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = {};
    try { json = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const e = new Error(json.message || "HTTP " + r.status);
      e.status = r.status;
      e.code = json.code;
      throw e;
    }
    return json;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function kindOf(k) {
    return String(k || "").replace("SURVEY_KIND_", "") || "NPS";
  }

  /**
   * Shows the form for `token` and resolves when it closes.
   * form: {kind, question, scaleMin, scaleMax, lowLabel, highLabel, language, branding}
   * floating: a card over the page (in-app); else rendered into `target` (hosted page,
   * whose own header shows the branding).
   */
  function mount(form, token, { floating, key, target, lang }) {
    return new Promise((resolve) => {
      const kind = kindOf(form.kind);
      const t = localeFor([form.language, lang, ...(navigator.languages || [navigator.language])]);
      const min = Number(form.scaleMin || 0);
      const max = Number(form.scaleMax || 10);
      const low = form.lowLabel || t[kind.toLowerCase() + "_low"];
      const high = form.highLabel || t[kind.toLowerCase() + "_high"];
      const brand = form.branding || {};

      const host = target || document.body.appendChild(el("div", { "data-rapport-widget": "" }));
      const root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
      root.appendChild(el("style", {}, CSS));
      const card = el("section", floating
        ? { class: "card float", role: "dialog", "aria-modal": "false", "aria-labelledby": "rq" }
        : { class: "card inline", "aria-labelledby": "rq" });
      card.setAttribute("lang", t.tag);
      card.setAttribute("dir", t.dir);
      if (/^#[0-9a-fA-F]{6}$/.test(brand.accentColor || "")) {
        card.style.setProperty("--accent", brand.accentColor);
        card.style.setProperty("--on-accent", onAccent(brand.accentColor));
      }
      root.appendChild(card);

      let score = null;
      let closed = false;
      const finish = (outcome) => {
        if (closed) return;
        closed = true;
        document.removeEventListener("keydown", onKey, true);
        if (floating) host.remove();
        const result = { outcome, score };
        window.dispatchEvent(new CustomEvent("rapport:close", { detail: result }));
        resolve(result);
      };
      const close = () => {
        if (score === null) {
          call("POST", `/v1/invitations/${enc(token)}:dismiss`, {}, key).catch(() => {}).finally(() => finish("dismissed"));
        } else {
          finish("closed");
        }
      };
      const onKey = (e) => {
        if (e.key === "Escape" && floating && e.composedPath().includes(host)) close();
      };
      document.addEventListener("keydown", onKey, true);

      if (floating) {
        const x = el("button", { type: "button", class: "x", "aria-label": t.close }, "×");
        x.addEventListener("click", close);
        card.appendChild(x);
        const logo = /^https:\/\//.test(brand.logoUrl || "") ? brand.logoUrl : "";
        if (logo || brand.displayName) {
          const b = el("div", { class: "brand" });
          if (logo) b.appendChild(el("img", { src: logo, alt: brand.displayName ? "" : "Logo" }));
          if (brand.displayName) b.appendChild(el("span", {}, brand.displayName));
          card.appendChild(b);
        }
      }
      card.appendChild(el(floating ? "h2" : "h1", { id: "rq" }, form.question || ""));
      const scale = el("div", { class: "scale", role: "group", "aria-labelledby": "rq", style: `--n:${max - min + 1}` });
      const buttons = [];
      for (let n = min; n <= max; n++) {
        const label = n === min ? `${n}, ${low}` : n === max ? `${n}, ${high}` : `${n}`;
        const b = el("button", { type: "button", "data-score": String(n), "aria-label": fill(t.score_label, { label, min, max }), "aria-pressed": "false" }, String(n));
        b.addEventListener("click", () => pick(n));
        buttons.push(b);
        scale.appendChild(b);
      }
      card.appendChild(scale);
      const labels = el("div", { class: "labels", "aria-hidden": "true" });
      labels.append(el("span", {}, low), el("span", {}, high));
      card.appendChild(labels);
      const msg = el("p", { class: "msg", role: "status", "aria-live": "polite" });
      card.appendChild(msg);

      const say = (text, error) => {
        msg.textContent = text;
        msg.className = error ? "msg error" : "msg";
      };
      let busy = false;
      let sending = false;

      /** The first tap records the score; a later one (before the comment is sent) changes it. */
      async function pick(n) {
        if (busy || sending || n === score) return;
        busy = true;
        buttons.forEach((b) => { b.disabled = true; });
        say(t.saving);
        const first = score === null;
        try {
          await call(first ? "POST" : "PATCH", `/v1/invitations/${enc(token)}/response`, { score: n }, key);
        } catch (e) {
          busy = false;
          if (first && e.status === 409) return thanks();
          buttons.forEach((b) => { b.disabled = false; });
          return say(e.status === 429 ? t.too_many : first && e.status === 400 ? t.closed : t.save_failed, true);
        }
        busy = false;
        score = n;
        buttons.forEach((b) => {
          b.disabled = false;
          b.setAttribute("aria-pressed", String(Number(b.dataset.score) === n));
        });
        say(t.change_hint);
        if (first) askComment();
      }

      function askComment() {
        const label = el("label", { for: "rc" }, kind === "NPS" ? t.reason_nps : t.reason_other);
        const text = el("textarea", { id: "rc", rows: "3", maxlength: "5000" });
        const send = el("button", { type: "button", class: "send" }, t.send);
        card.insertBefore(label, msg);
        card.insertBefore(text, msg);
        card.insertBefore(send, msg);
        send.addEventListener("click", async () => {
          if (busy) return;
          const comment = text.value.trim();
          if (!comment) return thanks();
          sending = true;
          send.disabled = true;
          buttons.forEach((b) => { b.disabled = true; });
          say(t.sending);
          try {
            await call("PATCH", `/v1/invitations/${enc(token)}/response`, { comment }, key);
          } catch (e) {
            sending = false;
            send.disabled = false;
            buttons.forEach((b) => { b.disabled = false; });
            return say(t.send_failed, true);
          }
          thanks();
        });
        text.focus();
      }

      function thanks() {
        for (const node of [...card.children]) if (!node.classList.contains("x") && !node.classList.contains("brand")) node.remove();
        const done = el("p", { class: "thanks", role: "status", tabindex: "-1" }, t.thanks);
        card.appendChild(done);
        done.focus();
        if (floating) setTimeout(() => finish("answered"), 2500);
        else finish("answered");
      }
    });
  }

  /** In-app: asks rapport whether to show `survey` to `customer`, and shows it. */
  async function show(opts) {
    const { key, customer, survey, customerHash, lang } = opts || {};
    const done = (result) => {
      window.dispatchEvent(new CustomEvent("rapport:close", { detail: result }));
      return result;
    };
    if (!key || !customer || !survey) return done({ outcome: "error", error: "key, customer and survey are required" });
    let issued;
    try {
      issued = await call("POST", `/v1/surveys/${enc(survey)}/invitations`,
        { customerId: String(customer), channel: "CHANNEL_IN_APP", customerHash: customerHash || undefined }, key);
    } catch (e) {
      return failed(e, done);
    }
    if (!issued.issued) return done({ outcome: "not-eligible", eligibility: issued.eligibility || {} });
    if (!issued.token) {
      // Today's invitation was already answered or closed: nothing to show, and the
      // customer was eligible when it was issued, so this is not "not-eligible".
      const status = (issued.invitation || {}).status;
      return done({ outcome: status === "INVITATION_STATUS_DISMISSED" ? "already-dismissed" : "already-answered" });
    }
    let inv;
    try {
      inv = await call("GET", `/v1/invitations/${enc(issued.token)}`, undefined, key);
    } catch (e) {
      return failed(e, done);
    }
    return mount(inv.form || {}, issued.token, { floating: true, key, lang });
  }

  /** Never break the host page: report and stay closed. */
  function failed(e, done) {
    if (window.console) console.warn("rapport widget:", e.message);
    return done({ outcome: "error", error: e.message, status: e.status });
  }

  /** The hosted page: the form of `token` inside `target`. */
  async function hosted(token, target) {
    const d = target.dataset;
    let form = d.question
      ? { kind: d.kind, question: d.question, scaleMin: d.min, scaleMax: d.max, lowLabel: d.low, highLabel: d.high,
          language: d.lang, branding: { accentColor: d.accent } }
      : null;
    if (!form) form = (await call("GET", `/v1/invitations/${enc(token)}`)).form || {};
    return mount(form, token, { floating: false, target });
  }

  const api = (window.rapport = window.rapport || {});
  api.show = show;
  api.version = "2";
  if (script && script.dataset) {
    const d = script.dataset;
    const start = () => {
      if (d.token) {
        const target = document.getElementById(d.target || "rapport-survey");
        if (target) api.last = hosted(d.token, target);
      } else if (d.key && d.survey && d.customer) {
        api.last = show({ key: d.key, customer: d.customer, survey: d.survey, customerHash: d.customerHash, lang: d.lang });
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})();
