// mock_meta console: plain JavaScript, no build step, no network beyond this mock.
// State arrives as snapshots over server-sent events (/_mock/console/stream); every user
// action is a plain control-API call (/_mock/...), exactly what a test would send.
"use strict";

const API = "/_mock";
const state = { snap: null, receivedAt: 0, psid: null, pageId: null, open: new Set(), source: null, downTimer: 0 };

// ---- tiny DOM helper: text is always set as text, never parsed as HTML ----------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (id) => document.getElementById(id);
const fmtTime = (t) => (t ? new Date(t * 1000).toISOString().slice(11, 19) : "–");
const fmtJson = (v) => JSON.stringify(v, null, 2);

function fmtIn(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  if (Math.abs(s) < 120) return `${s} s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// ---- talking to the mock ----------------------------------------------------------------------
async function call(method, path, body) {
  const response = await fetch(API + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : text;
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : fmtJson(detail)}`);
  }
  return data;
}

function report(promise, where = "control-result") {
  return promise
    .then((data) => { $(where).textContent = data && data.ok === false ? fmtJson(data) : "done"; return data; })
    .catch((err) => { $(where).textContent = `failed: ${err.message}`; });
}

function act(body) {
  if (!state.psid) return Promise.resolve();
  return report(call("POST", `/users/${encodeURIComponent(state.psid)}/actions`,
    { page_id: state.pageId, ...body }), "conversation-result");
}

function connect() {
  if (state.source) state.source.close();
  const query = new URLSearchParams();
  if (state.psid) query.set("psid", state.psid);
  if (state.pageId) query.set("page_id", state.pageId);
  const source = new EventSource(`${API}/console/stream?${query}`);
  state.source = source;
  // The server ends each stream after a few seconds and the browser reconnects at once:
  // only a reconnect that takes a while is news.
  source.onopen = () => {
    clearTimeout(state.downTimer);
    $("live").textContent = "live";
    $("live").dataset.state = "live";
  };
  source.onerror = () => {
    clearTimeout(state.downTimer);
    state.downTimer = setTimeout(() => {
      $("live").textContent = "reconnecting…";
      $("live").dataset.state = "down";
    }, 1500);
  };
  source.onmessage = (msg) => {
    state.snap = JSON.parse(msg.data);
    state.receivedAt = performance.now();
    if (!state.psid && state.snap.psid) { state.psid = state.snap.psid; state.pageId = state.snap.page_id; }
    render();
  };
}

// ---- the clock (runs on between snapshots) ---------------------------------------------------
function platformNow() {
  const clock = state.snap && state.snap.clock;
  if (!clock) return null;
  if (clock.frozen) return clock.now;
  return clock.now + ((performance.now() - state.receivedAt) / 1000) * clock.rate;
}

function renderClock() {
  const clock = state.snap && state.snap.clock;
  if (!clock) return;
  const how = clock.frozen ? "frozen" : clock.rate === 1 ? "running" : `running ×${clock.rate}`;
  $("clock").textContent = `platform clock ${fmtTime(platformNow())} UTC (${how})`;
  $("clock").dataset.frozen = clock.frozen ? "true" : "false";
  $("clock-detail").textContent = `Now ${new Date(platformNow() * 1000).toISOString()} — ${how}.`;
}

// ---- rendering -------------------------------------------------------------------------------
// A panel is rebuilt only when its data changed: a rebuild would drop the keyboard focus
// (a chip, a Redeliver button) and make screen readers announce the whole log again.
const renderedKeys = {};
function changed(panel, data) {
  const key = JSON.stringify(data);
  if (renderedKeys[panel] === key) return false;
  renderedKeys[panel] = key;
  return true;
}

function render() {
  renderClock();
  renderWho();
  renderThread();
  renderDeliveries();
  renderSends();
  renderControl();
}

function renderWho() {
  const { config } = state.snap;
  if (!changed("who", [config.pages, config.users, state.psid, state.pageId])) return;
  const pages = $("page-select");
  const users = $("user-select");
  if (document.activeElement !== pages) {
    pages.replaceChildren(...config.pages.map((p) =>
      h("option", { value: p.id, selected: p.id === state.pageId }, `${p.name} (${p.id})`)));
  }
  if (document.activeElement !== users) {
    const mine = config.users.filter((u) => !state.pageId || u.page_id === state.pageId);
    users.replaceChildren(...mine.map((u) =>
      h("option", { value: u.psid, selected: u.psid === state.psid },
        `${u.first_name} ${u.last_name} (${u.psid})`)));
  }
}

function renderThread() {
  const items = state.snap.conversation;
  if (!changed("thread", [state.psid, items])) return;
  const thread = $("thread");
  const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
  const lastMessage = [...items].reverse().find((i) => i.side === "bot" && i.kind === "message" && i.ok);
  const lastBotAt = items.reduce((seq, i) => (i.side === "bot" && i.ok ? i.seq : seq), 0);
  const seenSeq = items.reduce((seq, i) =>
    (i.side === "bot" && i.sender_action === "mark_seen" && i.ok ? i.seq : seq), 0);
  const lastUser = [...items].reverse().find((i) => i.side === "user" && i.seq < seenSeq);
  const reactions = new Map();  // the user's latest reaction to each bot message
  for (const item of items) {
    if (item.side === "user" && item.type === "reaction" && item.target_mid) {
      reactions.set(item.target_mid, item.action === "unreact" ? null : item.reaction);
    }
  }
  const rows = [];
  for (const item of items) {
    if (item.side === "user") rows.push(userRow(item, lastUser && item.seq === lastUser.seq));
    else if (item.kind === "message" || !item.ok) {
      rows.push(botRow(item, item === lastMessage, reactions.get(item.message_id)));
    }
  }
  const typing = [...items].reverse().find((i) => i.side === "bot" && i.sender_action);
  if (typing && typing.sender_action === "typing_on" && typing.seq >= lastBotAt) {
    rows.push(h("div", { class: "msg bot typing", "aria-label": "The bot is typing" },
      h("span", { class: "bubble" }, "● ● ●")));
  }
  if (!rows.length) rows.push(h("p", { class: "muted" }, "No messages yet: type below as the user."));
  thread.replaceChildren(...rows);
  if (atBottom) thread.scrollTop = thread.scrollHeight;
}

function userRow(item, seen) {
  let content;
  if (item.type === "read") content = h("span", { class: "note" }, "read the conversation");
  else if (item.type === "reaction") {
    content = h("span", { class: "note" }, `${item.action === "unreact" ? "removed" : "reacted"} ${item.reaction || ""} to a message`);
  } else {
    content = h("span", { class: "bubble" },
      item.text || "",
      (item.attachments || []).map(mediaOf),
      item.payload ? h("small", { class: "payload" }, ` ${item.type} payload ${item.payload}`) : null);
  }
  return h("div", { class: `msg user type-${item.type}`, dataset: { mid: item.mid || "" } },
    content, seen ? h("small", { class: "seen" }, "Seen") : null);
}

const REACTION_EMOJI = { love: "❤️", smile: "😆", wow: "😮", sad: "😢", angry: "😠", like: "👍", dislike: "👎" };

function botRow(item, isLast, reaction) {
  if (!item.ok) {
    const err = (item.response && item.response.error) || {};
    return h("div", { class: "msg bot failed" },
      h("span", { class: "bubble error" },
        `Send API call failed: ${item.error_code ?? item.status} ${err.message || ""}`));
  }
  const message = item.message || {};
  const parts = [];
  if (message.text) parts.push(h("span", { class: "bubble" }, message.text));
  if (message.attachment) parts.push(attachmentOf(message.attachment));
  const react = h("button", { type: "button", class: "react", "aria-label": "React with a heart",
    onclick: () => act({ type: "reaction", target_mid: item.message_id, reaction: "love" }) }, "♡");
  const row = h("div", { class: "msg bot", dataset: { mid: item.message_id || "" } },
    h("div", { class: "line" }, parts, react),
    reaction ? h("span", { class: "reaction", "aria-label": `You reacted ${reaction}` },
      REACTION_EMOJI[reaction] || reaction) : null);
  if (isLast && Array.isArray(message.quick_replies)) {
    row.append(h("div", { class: "chips", role: "group", "aria-label": "Quick replies" },
      message.quick_replies.map((q) => {
        const tap = quickReplyTap(q);
        return h("button", { type: "button", class: "chip", onclick: () => act(tap) }, tap.text);
      })));
  }
  return row;
}

// Links and media come from the bot: only http(s) URLs become links (no javascript: here).
const safeUrl = (url) => (typeof url === "string" && /^https?:\/\//i.test(url) ? url : null);

// What tapping a chip sends: a text chip its payload; Messenger fills the phone and email
// chips from the user's profile and sends that value as the payload.
const PROFILE_CHIPS = { user_phone_number: "+15550100", user_email: "test.user@example.com" };
function quickReplyTap(q) {
  if (q.content_type in PROFILE_CHIPS) {
    const value = PROFILE_CHIPS[q.content_type];
    return { type: "quick_reply", text: value, payload: value };
  }
  return { type: "quick_reply", text: q.title, payload: q.payload };
}

function mediaOf(att) {
  const url = safeUrl(att && att.payload && att.payload.url);
  if (!url) return h("span", { class: "note" }, `[${att.type}]`);
  if (att.type === "image") return h("img", { src: url, alt: "image attachment", class: "media" });
  if (att.type === "video") return h("video", { src: url, controls: true, class: "media" });
  if (att.type === "audio") return h("audio", { src: url, controls: true });
  return h("a", { href: url, target: "_blank", rel: "noopener" }, `file: ${url}`);
}

function buttonOf(b) {
  if (b.type === "postback") {
    return h("button", { type: "button", class: "tbutton",
      onclick: () => act({ type: "postback", payload: b.payload, title: b.title }) }, b.title);
  }
  if (b.type === "web_url" && safeUrl(b.url)) {
    return h("a", { class: "tbutton", href: safeUrl(b.url), target: "_blank", rel: "noopener" }, b.title);
  }
  return h("span", { class: "tbutton" }, b.title || b.type);
}

function attachmentOf(att) {
  if (att.type !== "template") return h("span", { class: "bubble" }, mediaOf(att));
  const p = att.payload || {};
  if (p.template_type === "button") {
    return h("div", { class: "bubble template" }, h("p", {}, p.text || ""),
      h("div", { class: "tbuttons" }, (p.buttons || []).map(buttonOf)));
  }
  if (p.template_type === "generic") {
    return h("div", { class: "carousel", role: "group", "aria-label": "Carousel" },
      (p.elements || []).map((e) => h("div", { class: "card-item" },
        safeUrl(e.image_url) ? h("img", { src: safeUrl(e.image_url), alt: e.title || "", class: "media" }) : null,
        h("strong", {}, e.title || ""), e.subtitle ? h("p", {}, e.subtitle) : null,
        h("div", { class: "tbuttons" }, (e.buttons || []).map(buttonOf)))));
  }
  return h("pre", { class: "bubble" }, fmtJson(att));
}

function toggle(id) {
  return (ev) => { if (ev.target.open) state.open.add(id); else state.open.delete(id); };
}

// A details element's "toggle" event comes a task after its click: a rebuild in between would
// build it closed again. So read what is open now from the panel being replaced.
function keepOpenState(container) {
  for (const el of container.querySelectorAll("details[data-open-key]")) {
    if (el.open) state.open.add(el.dataset.openKey); else state.open.delete(el.dataset.openKey);
  }
}

function renderDeliveries() {
  const snap = state.snap;
  const data = [snap.deliveries, snap.config.pages, snap.alerts, snap.profile, snap.clock.frozen];
  if (!changed("deliveries", data)) return;
  const now = platformNow();
  const subs = [];
  for (const page of snap.config.pages) {
    for (const sub of page.subscribed_apps) {
      const f = sub.failure;
      subs.push(h("li", { dataset: { state: sub.active ? "active" : "disabled" } },
        h("strong", {}, `app ${sub.app_id} → page ${page.id}: `),
        sub.active ? "subscribed" : `UNSUBSCRIBED (${sub.disabled_reason || "disabled"})`,
        f ? ` — failing since ${fmtTime(f.failing_since)}; alert at ${fmtTime(f.alert_at)}` +
            ` (in ${fmtIn(f.alert_at - now)}), unsubscribe at ${fmtTime(f.disable_at)} (in ${fmtIn(f.disable_at - now)})` : ""));
    }
  }
  const p = snap.profile;
  $("subscription-state").replaceChildren(h("h3", {}, "Subscriptions"),
    h("ul", { "aria-label": "Subscriptions" }, subs),
    h("p", { class: "muted", id: "retry-schedule" },
      `Retry schedule (${p.name}): ${p.immediate_retries} immediate retries, then after ` +
      `${p.retry_delays.map(fmtIn).join(", ")}, then every ${fmtIn(p.repeat_delay)}; ` +
      `alert after ${fmtIn(p.alert_after)} of failures, unsubscribe after ${fmtIn(p.disable_after)}; ` +
      `an event is given up ${fmtIn(p.give_up_after)} after its first attempt. ` +
      `Timeout ${p.timeout_seconds} s, success = ${p.success}.`));
  $("alerts").replaceChildren(h("h3", {}, "Developer alerts"),
    snap.alerts.length
      ? h("ul", { "aria-label": "Alerts" }, snap.alerts.map((a) =>
        h("li", { class: `alert ${a.kind}` }, `${fmtTime(a.at)} ${a.kind}: ${a.message}`)))
      : h("p", { class: "muted" }, "No alerts."));
  keepOpenState($("delivery-list"));
  const rows = snap.deliveries.map((d) => {
    const last = d.attempts[d.attempts.length - 1];
    const id = `d:${d.delivery_id}`;
    return h("details", { class: `delivery state-${d.state}`, open: state.open.has(id), ontoggle: toggle(id),
      dataset: { delivery: d.delivery_id, state: d.state, openKey: id } },
      h("summary", {},
        h("span", { class: `badge ${d.state}` }, d.state),
        ` ${d.delivery_id} ${d.event_type} → app ${d.app_id}`, d.psid ? ` (user ${d.psid})` : "",
        ` · ${d.attempts.length} attempt(s)`,
        last ? ` · last ${last.status ?? last.outcome} in ${last.latency_ms} ms` : "",
        d.next_retry_at ? ` · next retry ${fmtTime(d.next_retry_at)} (in ${fmtIn(d.next_retry_at - now)})` : "",
        d.reason ? ` · ${d.reason}` : ""),
      h("div", { class: "row" }, h("button", { type: "button",
        onclick: () => report(call("POST", `/console/deliveries/${d.delivery_id}/redeliver`)) }, `Redeliver ${d.delivery_id}`)),
      h("ol", { class: "attempts" }, d.attempts.map((a) => h("li", {},
        h("p", {}, `attempt ${a.attempt} at ${fmtTime(a.at)}: ${a.outcome} ${a.status ?? ""} in ${a.latency_ms} ms`,
          a.duplicate ? " (duplicate)" : "", a.batch_size > 1 ? ` (batch of ${a.batch_size})` : "",
          a.error ? ` — ${a.error}` : ""),
        a.headers ? h("pre", { class: "wire", "aria-label": "Headers" },
          Object.entries(a.headers).map(([k, v]) => `${k}: ${v}`).join("\n")) : null,
        a.body ? h("pre", { class: "wire", "aria-label": "Body bytes" }, a.body) : null))));
  });
  $("delivery-list").replaceChildren(h("h3", {}, "Deliveries (newest first)"),
    ...(rows.length ? rows : [h("p", { class: "muted" }, "No deliveries yet.")]));
  const raw = $("raw-body");
  if (!raw.value && snap.psid) {
    raw.value = JSON.stringify({ object: "page", entry: [{ id: snap.page_id, time: Date.now(), messaging: [{
      sender: { id: snap.psid }, recipient: { id: snap.page_id }, timestamp: Date.now(),
      message: { mid: `m_raw_${Date.now()}`, text: "raw hello" } }] }] });
  }
}

function renderSends() {
  if (!changed("sends", state.snap.sends)) return;
  keepOpenState($("send-list"));
  const rows = state.snap.sends.map((s) => {
    const err = s.response && s.response.error;
    const id = `s:${s.seq}`;
    const what = s.message ? (s.message.text ? `“${s.message.text}”` : "attachment/template") : s.sender_action;
    return h("details", { class: `send ${s.ok ? "ok" : "failed"}`, open: state.open.has(id), ontoggle: toggle(id),
      dataset: { ok: s.ok ? "true" : "false", retry: s.retry_of ? "true" : "false", openKey: id } },
      h("summary", {},
        h("span", { class: `badge ${s.ok ? "delivered" : "dropped"}` }, s.ok ? `${s.status} OK` : `${s.status} error ${s.error_code}`),
        ` #${s.seq} ${fmtTime(s.at)} ${s.kind} to ${s.psid}: ${what}`,
        s.retry_of ? ` · retry of #${s.retry_of}` : "",
        s.answers_mid ? ` · answers ${s.answers_mid}` : s.extra ? " · extra (no action left to answer)" : "",
        err ? ` · ${err.message}` : ""),
      h("div", { class: "pair" },
        h("div", {}, h("h4", {}, "Request"), h("pre", { class: "wire" }, fmtJson(s.request))),
        h("div", {}, h("h4", {}, s.ok ? "Answer" : "Graph error"), h("pre", { class: "wire" }, fmtJson(s.response)))));
  });
  $("send-list").replaceChildren(rows.length ? h("div", {}, rows) : h("p", { class: "muted" }, "No Send API calls yet."));
}

function renderControl() {
  const snap = state.snap;
  if (!changed("control", [snap.faults, snap.chaos, snap.config.pages])) return;
  $("fault-list").replaceChildren(...(snap.faults.length ? snap.faults.map((f) => h("li", {},
    `#${f.id}: code ${f.code ?? "–"}${f.subcode ? `/${f.subcode}` : ""} http ${f.http_status ?? "default"}` +
    ` ×${f.remaining ?? f.count ?? "∞"} p=${f.probability}${f.psid ? ` for ${f.psid}` : ""} `,
    h("button", { type: "button", onclick: () => report(call("DELETE", `/faults?id=${f.id}`)) }, `Clear fault ${f.id}`)))
    : [h("li", { class: "muted" }, "No faults armed.")]));
  const chaos = snap.chaos;
  for (const [id, key] of [["chaos-duplicate", "duplicate_probability"], ["chaos-reorder", "reorder_probability"],
    ["chaos-batch", "batch_max_entries"], ["chaos-signature", "signature"]]) {
    if (document.activeElement !== $(id)) $(id).value = chaos[key];
  }
  const subs = snap.config.pages.flatMap((p) => p.subscribed_apps.map((s) =>
    `app ${s.app_id} on page ${p.id}: ${s.active ? "subscribed" : "unsubscribed"}`));
  $("world-detail").textContent = `${subs.join("; ")}.`;
}

// ---- screens and wiring ----------------------------------------------------------------------
function showScreen() {
  const wanted = (location.hash || "#conversation").slice(1);
  for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== wanted;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.screen === wanted) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function num(id) {
  const value = $(id).value;
  return value === "" ? null : Number(value);
}

function wire() {
  window.addEventListener("hashchange", showScreen);
  showScreen();
  $("page-select").addEventListener("change", (e) => {
    state.pageId = e.target.value;
    const first = state.snap.config.users.find((u) => u.page_id === state.pageId);
    state.psid = first ? first.psid : null;
    connect();
  });
  $("user-select").addEventListener("change", (e) => { state.psid = e.target.value; connect(); });
  $("new-user").addEventListener("click", async () => {
    const user = await report(call("POST", "/users", { page_id: state.pageId, open_window: false }),
      "conversation-result");
    if (user && user.psid) { state.psid = user.psid; state.pageId = user.page_id; connect(); }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message-text").value;
    if (!text) return;
    $("message-text").value = "";
    act({ type: "text", text });
  });
  for (const button of document.querySelectorAll("[data-emoji]")) {
    button.addEventListener("click", () => { $("message-text").value += button.dataset.emoji; $("message-text").focus(); });
  }
  $("attach").addEventListener("submit", (e) => {
    e.preventDefault();
    act({ type: "attachment", attachment_type: $("attachment-type").value, url: $("attachment-url").value });
  });
  $("mark-read").addEventListener("click", () => act({ type: "read" }));
  $("raw").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("raw-result").textContent = "sending…";
    try {
      const result = await call("POST", "/console/raw", { body: $("raw-body").value, signature: $("raw-signature").value });
      $("raw-result").textContent = fmtJson(result);
    } catch (err) { $("raw-result").textContent = `failed: ${err.message}`; }
  });
  $("fault-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { code: num("fault-code"), subcode: num("fault-subcode"), http_status: num("fault-status"),
      count: num("fault-count"), probability: num("fault-probability") ?? 1, psid: $("fault-psid").value || null };
    report(call("POST", "/faults", body));
  });
  $("clear-faults").addEventListener("click", () => report(call("DELETE", "/faults")));
  $("chaos-form").addEventListener("submit", (e) => {
    e.preventDefault();
    report(call("PUT", "/chaos", { duplicate_probability: num("chaos-duplicate") ?? 0,
      reorder_probability: num("chaos-reorder") ?? 0, batch_max_entries: num("chaos-batch") ?? 1,
      signature: $("chaos-signature").value }));
  });
  $("calm").addEventListener("click", () => report(call("PUT", "/chaos",
    { duplicate_probability: 0, reorder_probability: 0, batch_max_entries: 1, signature: "valid" })));
  $("freeze").addEventListener("click", () => report(call("POST", "/clock/freeze")));
  $("resume").addEventListener("click", () => report(call("POST", "/clock/resume", { rate: num("clock-rate") ?? 1 })));
  $("clock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    report(call("POST", "/clock/advance", { seconds: num("advance-seconds") ?? 0 }));
  });
  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", () => report(call("POST", "/clock/advance", { seconds: Number(button.dataset.advance) })));
  }
  $("resubscribe").addEventListener("click", () => report(call("POST", "/console/resubscribe", {})));
  $("reset").addEventListener("click", () => {
    if (window.confirm("Reset the mock to its seed? The journal, faults, chaos and clock are cleared.")) {
      report(call("POST", "/reset"));
    }
  });
  setInterval(() => { if (state.snap) renderClock(); }, 1000);
  connect();
}

document.addEventListener("DOMContentLoaded", wire);
