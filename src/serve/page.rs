//! The web page at `/`: ask a question, watch the answer stream, then read
//! each sentence with its citation markers and a card per source. Plain
//! HTML, CSS and JavaScript served from the binary; no external assets.

pub const INDEX_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Byline — attributed answers</title>
<style>
:root { --fg:#1d232a; --muted:#5b6570; --line:#d9dee3; --accent:#1f5f8b; --bad:#9b2c2c; --ok:#276749; --bg:#fbfbfa; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.55 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 52rem; margin: 0 auto; padding: 1.5rem 1rem 4rem; }
h1 { font-size:1.4rem; margin:0 0 .25rem; }
p.lead { color:var(--muted); margin:0 0 1.25rem; }
form { display:flex; gap:.5rem; }
input[type=text] { flex:1; padding:.6rem .75rem; font:inherit; border:1px solid var(--line); border-radius:6px; }
button { padding:.6rem 1rem; font:inherit; border:0; border-radius:6px; background:var(--accent); color:#fff; cursor:pointer; }
button[disabled] { opacity:.5; cursor:wait; }
#status { color:var(--muted); font-size:.9rem; min-height:1.4em; margin:.5rem 0; }
#stream { white-space:pre-wrap; color:var(--muted); border-left:3px solid var(--line); padding-left:.75rem; min-height:1em; }
#answer { margin-top:1rem; }
.sentence { display:inline; }
.sentence.unsupported { background:#fdecec; }
sup.cite a { text-decoration:none; color:var(--accent); font-weight:600; }
.refusal { border:1px solid #f0c8c8; background:#fdf3f3; color:var(--bad); padding:.75rem; border-radius:6px; }
#sources { display:grid; gap:.75rem; margin-top:1.25rem; }
.card { border:1px solid var(--line); border-radius:8px; padding:.75rem .9rem; background:#fff; }
.card h3 { margin:0 0 .25rem; font-size:1rem; }
.card .meta { color:var(--muted); font-size:.85rem; }
.badge { display:inline-block; font-size:.75rem; padding:.05rem .45rem; border-radius:999px; background:#e6f0f7; color:var(--accent); border:1px solid #c6dbea; margin-right:.35rem; }
.badge.unknown { background:#f3f3f3; color:#555; border-color:#ddd; }
blockquote { margin:.5rem 0; padding:.25rem .75rem; border-left:3px solid var(--accent); color:#333; }
details { margin-top:.4rem; font-size:.85rem; }
details pre { white-space:pre-wrap; background:#f6f8fa; padding:.5rem; border-radius:6px; }
</style>
</head>
<body>
<main>
<h1>Byline</h1>
<p class="lead">Answers only from pages whose owners allow it; every sentence is checked against its source.</p>
<form id="ask">
  <input type="text" id="q" name="question" autocomplete="off" required
         placeholder="Ask about the corpus, e.g. When was the mill built?">
  <button type="submit" id="go">Ask</button>
</form>
<div id="status" role="status"></div>
<div id="stream" aria-live="polite"></div>
<div id="answer"></div>
<div id="sources"></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function renderAnswer(a) {
  const box = $("answer"), cards = $("sources");
  box.replaceChildren(); cards.replaceChildren();
  if (a.refused) {
    box.append(el("div", {class: "refusal", id: "refusal"}, "Refused: ", a.reason || "no allowed source supports an answer"));
  }
  const sentences = Array.isArray(a.sentences) ? a.sentences : null;
  const p = el("p", {id: "answer-text"});
  if (sentences) {
    for (const s of sentences) {
      const span = el("span", {class: "sentence" + (s.supported === false ? " unsupported" : "")}, s.text);
      for (const n of (s.citations || [])) {
        span.append(el("sup", {class: "cite"}, el("a", {href: "#source-" + n}, "[" + n + "]")));
      }
      p.append(span, " ");
    }
  } else if (a.answer) {
    p.append(a.answer);
  }
  if (p.childNodes.length) box.append(p);
  for (const c of (a.citations || [])) {
    const lic = c.licence || "unknown licence";
    const card = el("div", {class: "card source-card", id: "source-" + c.n},
      el("h3", {}, "[" + c.n + "] ", el("a", {href: c.url, rel: "noopener"}, c.title || c.url)),
      el("div", {class: "meta"},
        el("span", {class: "badge" + (c.licence ? "" : " unknown")}, lic),
        c.author || c.site || "", c.url ? " · " + c.url : ""));
    if (c.attribution) card.append(el("div", {class: "meta attribution"}, c.attribution));
    if (c.quote) card.append(el("blockquote", {}, c.quote));
    const why = el("details", {class: "why"}, el("summary", {}, "Why we may use this"),
      el("pre", {}, JSON.stringify({verdict_id: c.verdict_id, decision: c.decision, conditions: c.conditions,
        policy_sha256: c.policy_sha256, support: c.support}, null, 2)));
    card.append(why);
    cards.append(card);
  }
}
async function ask(question) {
  $("go").disabled = true;
  $("status").textContent = "Waiting for the model…";
  $("stream").textContent = ""; $("answer").replaceChildren(); $("sources").replaceChildren();
  try {
    const resp = await fetch("/v1/answers", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({question, stream: true})});
    if (!resp.ok) {
      const e = await resp.json().catch(() => ({}));
      $("status").textContent = "Error " + resp.status + ": " + ((e.error && e.error.message) || resp.statusText);
      return;
    }
    const reader = resp.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        const obj = JSON.parse(data);
        if (event === "token") { $("status").textContent = "Generating…"; $("stream").textContent += obj.text; }
        else if (event === "answer") { $("status").textContent = "Checked " + (obj.citations || []).length + " citation(s) in " + (obj.seconds || 0).toFixed(1) + " s"; renderAnswer(obj); }
        else if (event === "error") { $("status").textContent = "Error: " + obj.error.message; }
      }
    }
  } catch (e) {
    $("status").textContent = "Error: " + e;
  } finally {
    $("go").disabled = false;
  }
}
$("ask").addEventListener("submit", (ev) => { ev.preventDefault(); const q = $("q").value.trim(); if (q) ask(q); });
const preset = new URLSearchParams(location.search).get("q");
if (preset) { $("q").value = preset; ask(preset); }
</script>
</body>
</html>
"##;
