/*! rapport widget: an in-app NPS / CSAT / CES survey. No dependencies, no build step.
 *
 *  <script src="https://rapport.example.com/widget.js" data-key="rk_pub_…"
 *          data-customer="crm-42" data-survey="SURVEY_ID" data-customer-hash="…"></script>
 *
 *  or, from code:  rapport.show({key, customer, survey, customerHash}) → Promise<{outcome}>
 *  outcome: "answered" | "dismissed" | "closed" | "not-eligible" | "error".
 *  A `rapport:close` event is dispatched on window with the same object.
 *
 *  It asks rapport whether to show the survey (IssueSurvey, eligibility applies), shows
 *  the scale with the survey's labels, records the score on click and the comment
 *  second, and closes. Closing it before answering is recorded (DismissInvitation).
 */
(() => {
  "use strict";
  const script = document.currentScript;
  const base = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  const enc = encodeURIComponent;

  const DEFAULT_LABELS = {
    NPS: ["Not at all likely", "Extremely likely"],
    CSAT: ["Very dissatisfied", "Very satisfied"],
    CES: ["Strongly disagree", "Strongly agree"],
  };

  const CSS = `
:host{all:initial}
.card{box-sizing:border-box;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
background:#fff;border:1px solid #d0d7de;border-radius:12px;padding:16px;position:relative}
.float{position:fixed;right:16px;bottom:16px;width:min(28rem,calc(100vw - 32px));z-index:2147483000;
box-shadow:0 8px 24px rgba(31,35,40,.2)}
@media (max-width:480px){.float{left:0;right:0;bottom:0;width:100%;border-radius:12px 12px 0 0}}
.inline{border:0;padding:0;background:none;font-size:16px}
h1,h2{font-size:1.1em;line-height:1.3;margin:0 2.75rem 12px 0;font-weight:600}
.inline h1{font-size:1.4em;margin-right:0}
.scale{display:grid;grid-template-columns:repeat(var(--n),minmax(0,1fr));gap:4px}
.scale button{min-width:0;min-height:2.75rem;padding:0;border:1px solid #8c959f;border-radius:6px;
background:#f6f8fa;color:inherit;font:inherit;font-weight:600;cursor:pointer}
.scale button:hover{background:#eaeef2}
.scale button[aria-pressed=true]{background:#0969da;border-color:#0969da;color:#fff}
button:disabled{cursor:default;opacity:.7}
button:focus-visible,textarea:focus-visible{outline:3px solid #0969da;outline-offset:2px}
.labels{display:flex;justify-content:space-between;gap:8px;font-size:13px;color:#57606a;margin-top:6px}
.x{position:absolute;top:6px;right:6px;width:2.75rem;height:2.75rem;border:0;border-radius:6px;background:none;
color:#57606a;font:22px/1 sans-serif;cursor:pointer}
.x:hover{background:#eaeef2}
label{display:block;margin-top:14px;font-weight:600}
textarea{box-sizing:border-box;width:100%;min-height:5rem;margin:6px 0 8px;padding:8px;border:1px solid #8c959f;
border-radius:6px;font:inherit;resize:vertical}
.send{min-height:2.75rem;padding:0 18px;border:0;border-radius:6px;background:#1f883d;color:#fff;font:inherit;
font-weight:600;cursor:pointer}
.msg{margin:10px 0 0;font-size:14px}
.msg:empty{margin:0}
.msg.error{color:#cf222e}
.thanks{font-weight:600;font-size:1.05em;margin:4px 2.75rem 4px 0}`;

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
   * form: {kind, question, scaleMin, scaleMax, lowLabel, highLabel}
   * floating: a card over the page (in-app); else rendered into `target` (hosted page).
   */
  function mount(form, token, { floating, key, target }) {
    return new Promise((resolve) => {
      const kind = kindOf(form.kind);
      const min = Number(form.scaleMin || 0);
      const max = Number(form.scaleMax || 10);
      const low = form.lowLabel || DEFAULT_LABELS[kind][0];
      const high = form.highLabel || DEFAULT_LABELS[kind][1];

      const host = target || document.body.appendChild(el("div", { "data-rapport-widget": "" }));
      const root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
      root.appendChild(el("style", {}, CSS));
      const card = el("section", floating
        ? { class: "card float", role: "dialog", "aria-modal": "false", "aria-labelledby": "rq" }
        : { class: "card inline", "aria-labelledby": "rq" });
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
        const x = el("button", { type: "button", class: "x", "aria-label": "Close survey" }, "×");
        x.addEventListener("click", close);
        card.appendChild(x);
      }
      card.appendChild(el(floating ? "h2" : "h1", { id: "rq" }, form.question || ""));
      const scale = el("div", { class: "scale", role: "group", "aria-labelledby": "rq", style: `--n:${max - min + 1}` });
      const buttons = [];
      for (let n = min; n <= max; n++) {
        const label = n === min ? `${n}, ${low}` : n === max ? `${n}, ${high}` : `${n}`;
        const b = el("button", { type: "button", "data-score": String(n), "aria-label": `${label} (of ${min} to ${max})`, "aria-pressed": "false" }, String(n));
        b.addEventListener("click", () => pick(n, b));
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

      async function pick(n, button) {
        if (score !== null) return;
        buttons.forEach((b) => { b.disabled = true; });
        say("Saving…");
        try {
          await call("POST", `/v1/invitations/${enc(token)}/response`, { score: n }, key);
        } catch (e) {
          if (e.status === 409) return thanks();
          buttons.forEach((b) => { b.disabled = false; });
          return say(e.status === 429 ? "Too many tries. Please wait a moment and try again."
            : e.status === 400 ? "Sorry, this survey can no longer be answered."
            : "Sorry, your answer couldn't be saved. Please try again.", true);
        }
        score = n;
        button.setAttribute("aria-pressed", "true");
        say("");
        askComment();
      }

      function askComment() {
        const label = el("label", { for: "rc" }, kind === "NPS"
          ? "What is the main reason for your score?" : "Anything you'd like to add? (optional)");
        const text = el("textarea", { id: "rc", rows: "3", maxlength: "5000" });
        const send = el("button", { type: "button", class: "send" }, "Send");
        card.insertBefore(label, msg);
        card.insertBefore(text, msg);
        card.insertBefore(send, msg);
        send.addEventListener("click", async () => {
          const comment = text.value.trim();
          if (!comment) return thanks();
          send.disabled = true;
          say("Sending…");
          try {
            await call("PATCH", `/v1/invitations/${enc(token)}/response`, { comment }, key);
          } catch (e) {
            send.disabled = false;
            return say("Sorry, your comment couldn't be sent. Please try again.", true);
          }
          thanks();
        });
        text.focus();
      }

      function thanks() {
        for (const node of [...card.children]) if (!node.classList.contains("x")) node.remove();
        const t = el("p", { class: "thanks", role: "status", tabindex: "-1" }, "Thank you for your feedback!");
        card.appendChild(t);
        t.focus();
        if (floating) setTimeout(() => finish("answered"), 2500);
        else finish("answered");
      }
    });
  }

  /** In-app: asks rapport whether to show `survey` to `customer`, and shows it. */
  async function show(opts) {
    const { key, customer, survey, customerHash } = opts || {};
    const done = (result) => {
      window.dispatchEvent(new CustomEvent("rapport:close", { detail: result }));
      return result;
    };
    if (!key || !customer || !survey) return done({ outcome: "error", error: "key, customer and survey are required" });
    try {
      const issued = await call("POST", `/v1/surveys/${enc(survey)}/invitations`,
        { customerId: String(customer), channel: "CHANNEL_IN_APP", customerHash: customerHash || undefined }, key);
      if (!issued.issued || !issued.token) return done({ outcome: "not-eligible", eligibility: issued.eligibility || {} });
      const inv = await call("GET", `/v1/invitations/${enc(issued.token)}`, undefined, key);
      return await mount(inv.form || {}, issued.token, { floating: true, key });
    } catch (e) {
      // Never break the host page: report and stay closed.
      if (window.console) console.warn("rapport widget:", e.message);
      return done({ outcome: "error", error: e.message, status: e.status });
    }
  }

  /** The hosted page: the form of `token` inside `target`. */
  async function hosted(token, target) {
    const d = target.dataset;
    let form = d.question
      ? { kind: d.kind, question: d.question, scaleMin: d.min, scaleMax: d.max, lowLabel: d.low, highLabel: d.high }
      : null;
    if (!form) form = (await call("GET", `/v1/invitations/${enc(token)}`)).form || {};
    return mount(form, token, { floating: false, target });
  }

  const api = (window.rapport = window.rapport || {});
  api.show = show;
  api.version = "1";
  if (script && script.dataset) {
    const d = script.dataset;
    const start = () => {
      if (d.token) {
        const target = document.getElementById(d.target || "rapport-survey");
        if (target) api.last = hosted(d.token, target);
      } else if (d.key && d.survey && d.customer) {
        api.last = show({ key: d.key, customer: d.customer, survey: d.survey, customerHash: d.customerHash });
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})();
