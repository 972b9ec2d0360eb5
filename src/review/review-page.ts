// The review page, served by the review server itself: plain HTML, CSS and JavaScript in strings (no
// build step, no external resource). The page lists the set's photos, shows one with its mask, turns
// clicks and drags into SAM prompts, and sends the decisions; it works with the keyboard alone
// (next / previous, accept, exclude) and from 390 px wide screens up.

import { escapeHtml } from "../dataset/report.js";

/**
 * The page. The access token appears in the two asset URLs only (the script reads it from its own
 * address); every other request carries it in a header or, for images and events, in the query.
 */
export function reviewPageHtml(token: string): string {
  const q = `?token=${encodeURIComponent(token)}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>persam-db review</title>
<link rel="stylesheet" href="/review.css${escapeHtml(q)}">
</head><body>
<header class="top">
  <div class="title"><h1>persam-db review <span id="set-name" class="mute"></span></h1>
  <p id="set-info" class="mute"></p></div>
  <div class="rebuild">
    <button id="rebuild" type="button">Rebuild the set</button>
    <button id="own-reference" type="button" hidden>Back to the set's own reference</button>
    <progress id="rebuild-progress" max="1" value="0" hidden aria-label="rebuild progress"></progress>
    <span id="rebuild-status" role="status" aria-live="polite"></span>
  </div>
</header>
<p id="banner" class="banner" hidden></p>
<main class="layout">
  <section class="editor" aria-labelledby="photo-title">
    <div class="photo-head">
      <button id="prev" type="button" aria-keyshortcuts="ArrowLeft K" title="Previous photo (← or K)">← Previous</button>
      <h2 id="photo-title">…</h2>
      <button id="next" type="button" aria-keyshortcuts="ArrowRight J" title="Next photo (→ or J)">Next →</button>
    </div>
    <p id="photo-info" class="info"></p>
    <div id="stage" class="stage" tabindex="0" role="group" aria-roledescription="mask editor"
      aria-label="Photo and its mask. Click on the subject to add a point, Shift-click (or the Point off the subject button) for a point that is not the subject, drag to draw a box.">
      <img id="photo" alt="" draggable="false">
      <img id="overlay" alt="" draggable="false">
      <svg id="marks" aria-hidden="true"></svg>
    </div>
    <div class="tools" role="toolbar" aria-label="Mask tools">
      <button id="negative" type="button" aria-pressed="false" aria-keyshortcuts="N">Point off the subject (N)</button>
      <button id="undo" type="button" aria-keyshortcuts="Z">Undo (Z)</button>
      <button id="reset" type="button" aria-keyshortcuts="R">Clear clicks (R)</button>
      <fieldset id="choices" class="choices" disabled>
        <legend>SAM's three masks</legend>
        <label><input type="radio" name="choice" value="0"> <span>1</span></label>
        <label><input type="radio" name="choice" value="1"> <span>2</span></label>
        <label><input type="radio" name="choice" value="2"> <span>3</span></label>
      </fieldset>
    </div>
    <div class="decide" role="group" aria-label="Decision about this photo">
      <button id="accept" type="button" class="primary" aria-keyshortcuts="A Enter">Accept (A)</button>
      <button id="exclude" type="button" aria-keyshortcuts="X">Exclude (X)</button>
      <button id="reference" type="button">Use as the reference</button>
      <button id="forget" type="button">Back to PerSAM's mask</button>
    </div>
    <p id="status" class="status" role="status" aria-live="polite"></p>
    <details class="help"><summary>Keys</summary>
      <dl>
        <dt>← → (or K J)</dt><dd>previous / next photo</dd>
        <dt>A or Enter</dt><dd>accept: the mask shown becomes this photo's mask; an unedited doubtful photo is kept as it is</dd>
        <dt>X</dt><dd>exclude the photo from the training set</dd>
        <dt>Z, R</dt><dd>undo the last click, clear all clicks</dd>
        <dt>N</dt><dd>next click is a point off the subject (as Shift-click)</dd>
        <dt>1 2 3</dt><dd>choose among SAM's three masks</dd>
      </dl>
      <p>Decisions are kept in the set's .persam/review/ folder and used by every later prepare; “Rebuild the set” applies them now.</p>
    </details>
  </section>
  <nav class="list" aria-label="Photos of the set"><ol id="photos"></ol></nav>
</main>
<script src="/review.js${escapeHtml(q)}"></script>
</body></html>
`;
}

/** The page's style sheet. */
export const REVIEW_PAGE_CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2127;--card:#fff;--mute:#5d6470;--line:#d5d9e0;--ok:#1a7f45;--warn:#a35f00;--bad:#b3261e;--accent:#2458c6;--pend:#6b3fb4}
@media (prefers-color-scheme:dark){:root{--bg:#15171b;--fg:#e6e8eb;--card:#1f2228;--mute:#a3aab6;--line:#3a3f48;--accent:#7aa5ff;--pend:#b79cf0;--ok:#4cc283;--warn:#f0a845;--bad:#ff7a70}}
*{box-sizing:border-box}
body{margin:0;padding:12px 16px 24px;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg);overflow-wrap:anywhere}
h1{font-size:19px;margin:0}h2{font-size:16px;margin:0;flex:1 1 auto;text-align:center;min-width:0}
.mute{color:var(--mute);font-weight:normal}
.top{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:center;justify-content:space-between;margin-bottom:8px}
.top p{margin:2px 0 0}.rebuild{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.banner{border-radius:8px;padding:8px 12px;margin:0 0 10px;color:#fff;background:var(--bad)}
button{font:inherit;min-height:40px;padding:6px 12px;border-radius:8px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button:hover:not(:disabled){border-color:var(--accent)}button:disabled{opacity:.5;cursor:default}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button[aria-pressed=true]{background:var(--bad);border-color:var(--bad);color:#fff}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.layout{display:grid;gap:16px;grid-template-columns:minmax(0,1fr)}
@media (min-width:900px){.layout{grid-template-columns:minmax(0,1fr) 300px}.list{max-height:calc(100vh - 110px);overflow:auto;position:sticky;top:8px}}
.editor{background:var(--card);border-radius:10px;padding:10px;min-width:0}
.photo-head{display:flex;gap:8px;align-items:center}
.info{margin:6px 0;min-height:1.4em}
.stage{position:relative;margin:0 auto;touch-action:none;user-select:none;-webkit-user-select:none;background:#30343b;border-radius:6px;overflow:hidden;cursor:crosshair;max-width:100%}
.stage img,.stage svg{position:absolute;inset:0;width:100%;height:100%;display:block}
.stage #overlay{pointer-events:none}.stage svg{pointer-events:none;overflow:visible}
.tools,.decide{display:flex;flex-wrap:wrap;gap:8px;margin-top:10px;align-items:center}
.choices{display:flex;gap:6px;border:1px solid var(--line);border-radius:8px;padding:2px 8px;margin:0}
.choices legend{font-size:12px;color:var(--mute);padding:0 4px}.choices label{display:flex;gap:4px;align-items:center;min-height:32px;padding:0 4px}
.status{min-height:1.4em;margin:8px 0 0}.status.error{color:var(--bad)}
.help{margin-top:8px;color:var(--mute);font-size:13px}.help dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:6px 0}.help dt{font-weight:600}.help dd{margin:0}
.list ol{list-style:none;margin:0;padding:0;display:grid;gap:6px}
.list button{display:grid;grid-template-columns:64px minmax(0,1fr);gap:8px;align-items:center;width:100%;text-align:left;padding:4px}
.list button[aria-current=true]{border:2px solid var(--accent)}
.list img{width:64px;height:48px;object-fit:cover;border-radius:4px;background:#30343b}
.name{display:block;font-size:14px}.badges{display:flex;flex-wrap:wrap;gap:4px;margin-top:2px}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;color:#fff;background:var(--ok)}
.badge.out{background:var(--mute)}.badge.doubtful{background:var(--warn)}.badge.excluded{background:var(--bad)}
.badge.edited,.badge.included,.badge.ref{background:var(--accent)}.badge.pending{background:var(--pend)}
.marks-pos{fill:#1a9d55;stroke:#fff}.marks-neg{fill:#c62828;stroke:#fff}.marks-box{fill:none;stroke:#ffd60a;stroke-dasharray:6 4}
`;

/**
 * The page's script. It keeps click→overlay latencies in `window.persamReview.latencies` (time from
 * the click to the frame that shows the new overlay) and the server's share of each in `serverMs`,
 * which the browser test reads.
 */
export const REVIEW_PAGE_SCRIPT = `"use strict";
(function () {
  var token = new URLSearchParams(location.search).get("token") || "";
  var q = "?token=" + encodeURIComponent(token);
  var $ = function (id) { return document.getElementById(id); };
  var hooks = { latencies: [], serverMs: [], predictions: 0, ready: false, rebuilds: 0, errors: [] };
  window.persamReview = hooks;
  var S = { set: null, index: 0, clicks: [], box: null, history: [], prediction: null, choice: 0,
    negative: false, seq: 0, version: 0, rebuilding: false };

  function api(path, body) {
    var init = { method: body === undefined ? "GET" : "POST",
      headers: { "x-persam-token": token, "content-type": "application/json" } };
    if (body !== undefined) init.body = JSON.stringify(body);
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) throw new Error(json.error || ("HTTP " + res.status));
        return json;
      });
    });
  }
  function photoUrl(stem, what) {
    return "/api/photos/" + encodeURIComponent(stem) + "/" + what;
  }
  function say(text, error) {
    var el = $("status");
    el.textContent = text;
    el.className = error ? "status error" : "status";
    if (error) hooks.errors.push(text);
  }
  function current() { return S.set ? S.set.photos[S.index] : null; }

  function badges(p) {
    var out = [];
    out.push(p.inSet ? ["in set", "in"] : ["left out", "out"]);
    if (p.doubtful && !p.override) out.push(["doubtful", "doubtful"]);
    if (p.override) out.push(["edited", "edited"]);
    if (p.decision === "exclude") out.push(["excluded", "excluded"]);
    if (p.decision === "include") out.push(["included", "included"]);
    if (p.reviewReference) out.push(["reference", "ref"]);
    if (p.pending) out.push(["rebuild to apply", "pending"]);
    return out;
  }
  function badgeNodes(p) {
    var span = document.createElement("span");
    span.className = "badges";
    badges(p).forEach(function (b) {
      var e = document.createElement("span");
      e.className = "badge " + b[1];
      e.textContent = b[0];
      span.appendChild(e);
    });
    return span;
  }

  function renderSet() {
    var set = S.set;
    $("set-name").textContent = "— " + set.name;
    var inSet = set.photos.filter(function (p) { return p.inSet; }).length;
    $("set-info").textContent = set.photos.length + " photos, " + inSet + " in the training set · model " +
      set.model + (set.reviewReference ? " · reference chosen here: " + set.reviewReference :
      (set.reference ? " · reference " + set.reference : ""));
    var banner = $("banner");
    var notes = set.testModel ? ["These masks come from persam-db's tiny random test model and mean nothing."] : [];
    notes = notes.concat(set.notes);
    banner.hidden = notes.length === 0;
    banner.textContent = notes.join(" ");
    var list = $("photos");
    list.textContent = "";
    set.photos.forEach(function (p, i) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button";
      b.dataset.index = String(i);
      b.setAttribute("aria-current", i === S.index ? "true" : "false");
      var img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      img.src = photoUrl(p.stem, "thumb") + q;
      var text = document.createElement("span");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = p.file;
      text.appendChild(name);
      text.appendChild(badgeNodes(p));
      b.appendChild(img);
      b.appendChild(text);
      b.setAttribute("aria-label", p.file + ": " + badges(p).map(function (x) { return x[0]; }).join(", "));
      b.addEventListener("click", function () { show(i); });
      li.appendChild(b);
      list.appendChild(li);
    });
    $("rebuild").disabled = S.rebuilding;
    $("own-reference").hidden = !set.reviewReference;
    renderPhotoInfo();
  }

  function renderPhotoInfo() {
    var p = current();
    if (!p) return;
    $("photo-title").textContent = p.file + " (" + (S.index + 1) + " of " + S.set.photos.length + ")";
    var info = $("photo-info");
    info.textContent = "";
    info.appendChild(badgeNodes(p));
    var text = document.createElement("span");
    text.textContent = " confidence " + p.confidence.toFixed(2) + " · mask " + (p.area * 100).toFixed(1) + "% of the photo" +
      (p.flags.length ? " · " + p.flags.join(", ") : "");
    info.appendChild(text);
    $("forget").disabled = !(p.override || p.decision);
  }

  function layoutStage(p) {
    var stage = $("stage");
    // Room for the header and the tool rows below the photo, so Accept stays on screen.
    var maxH = Math.max(240, window.innerHeight - 340);
    stage.style.aspectRatio = p.width + " / " + p.height;
    stage.style.width = "min(100%, " + Math.round(maxH * p.width / p.height) + "px)";
    $("marks").setAttribute("viewBox", "0 0 " + p.width + " " + p.height);
    $("marks").setAttribute("preserveAspectRatio", "none");
  }

  function show(i) {
    if (!S.set || S.set.photos.length === 0) return;
    S.index = (i + S.set.photos.length) % S.set.photos.length;
    var p = current();
    S.clicks = []; S.box = null; S.history = []; S.prediction = null; S.seq++;
    layoutStage(p);
    $("photo").alt = "photo " + p.file;
    $("photo").src = photoUrl(p.stem, "image") + q;
    showStoredMask();
    drawMarks();
    renderChoices();
    Array.prototype.forEach.call(document.querySelectorAll("#photos button"), function (b) {
      b.setAttribute("aria-current", b.dataset.index === String(S.index) ? "true" : "false");
    });
    renderPhotoInfo();
    say("");
  }

  function showStoredMask() {
    var p = current();
    S.version++;
    $("overlay").alt = "current mask of " + p.file;
    $("overlay").src = photoUrl(p.stem, "mask") + q + "&v=" + S.version;
  }

  function drawMarks(dragBox) {
    var svg = $("marks");
    var p = current();
    var r = Math.max(p.width, p.height) * 0.012;
    var parts = [];
    var box = dragBox || S.box;
    if (box) {
      parts.push('<rect class="marks-box" x="' + box[0] + '" y="' + box[1] + '" width="' + (box[2] - box[0]) +
        '" height="' + (box[3] - box[1]) + '" stroke-width="' + (r * 0.35) + '"/>');
    }
    S.clicks.forEach(function (c) {
      parts.push('<circle class="' + (c.label ? "marks-pos" : "marks-neg") + '" cx="' + c.x + '" cy="' + c.y +
        '" r="' + r + '" stroke-width="' + (r * 0.3) + '"/>');
    });
    svg.innerHTML = parts.join("");
  }

  function renderChoices() {
    var fs = $("choices");
    var pred = S.prediction;
    fs.disabled = !pred;
    var inputs = fs.querySelectorAll("input");
    Array.prototype.forEach.call(inputs, function (input, i) {
      input.checked = !!pred && i === S.choice;
      var label = input.nextElementSibling;
      label.textContent = pred ? (i + 1) + " (" + pred.masks[i].score.toFixed(2) + ")" : String(i + 1);
    });
  }

  function choose(i) {
    if (!S.prediction) return;
    S.choice = i;
    renderChoices();
    $("overlay").src = "data:image/png;base64," + S.prediction.masks[i].png;
  }

  function predict(t0) {
    var p = current();
    var my = ++S.seq;
    drawMarks();
    if (S.clicks.length === 0 && !S.box) {
      S.prediction = null;
      renderChoices();
      showStoredMask();
      return Promise.resolve();
    }
    say("…");
    return api(photoUrl(p.stem, "predict"), { clicks: S.clicks, box: S.box || undefined }).then(function (res) {
      if (my !== S.seq) return;
      S.prediction = res;
      S.choice = res.best;
      renderChoices();
      var overlay = $("overlay");
      overlay.alt = "mask from your clicks on " + p.file;
      overlay.src = "data:image/png;base64," + res.masks[res.best].png;
      return overlay.decode().catch(function () {}).then(function () {
        requestAnimationFrame(function () {
          if (my !== S.seq) return;
          hooks.latencies.push(performance.now() - t0);
          hooks.serverMs.push(res.ms.total);
          hooks.predictions++;
          say("Mask " + (res.best + 1) + " of 3 (SAM's score " + res.masks[res.best].score.toFixed(2) +
            "). Accept keeps it.");
        });
      });
    }).catch(function (e) { if (my === S.seq) say(e.message, true); });
  }

  function toPhoto(ev) {
    var p = current();
    var r = $("stage").getBoundingClientRect();
    var x = Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 1) * p.width;
    var y = Math.min(Math.max((ev.clientY - r.top) / r.height, 0), 1) * p.height;
    return { x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10, sx: ev.clientX, sy: ev.clientY };
  }

  var drag = null;
  function onDown(ev) {
    if (!current() || ev.button > 0) return;
    drag = { start: toPhoto(ev), id: ev.pointerId, shift: ev.shiftKey, moved: false };
    $("stage").setPointerCapture(ev.pointerId);
    ev.preventDefault();
  }
  function onMove(ev) {
    if (!drag || ev.pointerId !== drag.id) return;
    var now = toPhoto(ev);
    if (Math.abs(now.sx - drag.start.sx) + Math.abs(now.sy - drag.start.sy) > 8) drag.moved = true;
    if (drag.moved) drawMarks(boxOf(drag.start, now));
  }
  function boxOf(a, b) {
    return [Math.min(a.x, b.x), Math.min(a.y, b.y), Math.max(a.x, b.x), Math.max(a.y, b.y)];
  }
  function onUp(ev) {
    if (!drag || ev.pointerId !== drag.id) return;
    var t0 = performance.now();
    var end = toPhoto(ev);
    var d = drag;
    drag = null;
    S.history.push({ clicks: S.clicks.slice(), box: S.box });
    if (d.moved) {
      var b = boxOf(d.start, end);
      if (b[2] - b[0] < 1 || b[3] - b[1] < 1) { S.history.pop(); drawMarks(); return; }
      S.box = b;
    } else {
      var negative = d.shift || ev.shiftKey || S.negative;
      S.clicks = S.clicks.concat([{ x: d.start.x, y: d.start.y, label: negative ? 0 : 1 }]);
      if (S.negative) setNegative(false);
    }
    predict(t0);
  }

  function setNegative(on) {
    S.negative = on;
    $("negative").setAttribute("aria-pressed", on ? "true" : "false");
  }
  function undo() {
    var last = S.history.pop();
    if (!last) return;
    S.clicks = last.clicks; S.box = last.box;
    predict(performance.now());
  }
  function reset() {
    S.clicks = []; S.box = null; S.history = [];
    predict(performance.now());
    say("Clicks cleared: the mask shown is the one the set uses.");
  }

  function afterDecision(set, message) {
    var stem = current().stem;
    S.set = set;
    var i = set.photos.findIndex(function (p) { return p.stem === stem; });
    S.index = i < 0 ? 0 : i;
    renderSet();
    S.clicks = []; S.box = null; S.history = []; S.prediction = null; S.seq++;
    drawMarks(); renderChoices(); showStoredMask();
    say(message);
  }
  function decide(what, body, message) {
    var p = current();
    if (!p) return Promise.resolve();
    return api(photoUrl(p.stem, what), body === undefined ? {} : body).then(function (set) {
      afterDecision(set, message);
    }).catch(function (e) { say(e.message, true); });
  }
  function promptBody() {
    if (!S.prediction) return {};
    return { clicks: S.clicks, box: S.box || undefined, token: S.prediction.masks[S.choice].token };
  }
  function accept() {
    var edited = !!S.prediction;
    return decide("accept", promptBody(), edited ? "Accepted: this mask is the photo's mask from now on (rebuild to apply)." :
      "Accepted as it is: the photo stays in the training set (rebuild to apply).");
  }
  function exclude() { return decide("exclude", {}, "Excluded: the photo leaves the training set (rebuild to apply)."); }
  function forget() { return decide("forget", {}, "Back to PerSAM: what was decided here about this photo is forgotten."); }
  function useAsReference() {
    return decide("reference", promptBody(), "This photo and mask are the reference now; rebuilding the set…")
      .then(function () { return rebuild(); });
  }

  function ownReference() {
    return api("/api/reference/forget", {}).then(function (set) {
      afterDecision(set, "The reference chosen here is forgotten; rebuild to segment from the set's own reference.");
    }).catch(function (e) { say(e.message, true); });
  }
  function rebuild() {
    return api("/api/rebuild", {}).then(function () {
      S.rebuilding = true;
      $("rebuild").disabled = true;
    }).catch(function (e) { say(e.message, true); });
  }
  function reload() {
    return api("/api/set").then(function (set) {
      var stem = current() ? current().stem : null;
      S.set = set;
      S.rebuilding = set.rebuilding;
      var i = stem ? set.photos.findIndex(function (p) { return p.stem === stem; }) : 0;
      S.index = i < 0 ? 0 : i;
      renderSet();
    });
  }
  function listen() {
    var es = new EventSource("/api/events" + q);
    var bar = $("rebuild-progress");
    var text = $("rebuild-status");
    es.addEventListener("rebuild", function (m) {
      var e = JSON.parse(m.data);
      if (e.phase === "start") {
        S.rebuilding = true; $("rebuild").disabled = true;
        bar.hidden = false; bar.value = 0; text.textContent = "Rebuilding the set…";
      } else if (e.phase === "progress") {
        bar.hidden = false; bar.max = e.total; bar.value = e.done;
        text.textContent = "Rebuilding: " + e.done + " of " + e.total + " (" + e.file + " " + e.status + ")";
      } else if (e.phase === "done" || e.phase === "failed") {
        S.rebuilding = false; bar.hidden = true;
        text.textContent = e.phase === "done" ? "Rebuilt: " + e.kept + " photos in the training set, " +
          e.segmented + " segmented again." : "Rebuild failed: " + e.message;
        if (e.phase === "done") hooks.rebuilds++; else hooks.errors.push(e.message);
        reload().then(function () { if (current()) show(S.index); });
      }
    });
  }

  function typing(el) {
    return el && (el.tagName === "INPUT" && el.type !== "radio" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var k = ev.key;
    var onRadio = ev.target && ev.target.type === "radio";
    var onButton = ev.target && ev.target.tagName === "BUTTON";
    if ((k === "ArrowRight" || k === "j") && !onRadio) { show(S.index + 1); ev.preventDefault(); }
    else if ((k === "ArrowLeft" || k === "k") && !onRadio) { show(S.index - 1); ev.preventDefault(); }
    else if (k === "a" || (k === "Enter" && !onButton)) { accept(); ev.preventDefault(); }
    else if (k === "x") { exclude(); ev.preventDefault(); }
    else if (k === "z") { undo(); ev.preventDefault(); }
    else if (k === "r") { reset(); ev.preventDefault(); }
    else if (k === "n") { setNegative(!S.negative); ev.preventDefault(); }
    else if (k === "1" || k === "2" || k === "3") { choose(Number(k) - 1); ev.preventDefault(); }
  });

  var stage = $("stage");
  stage.addEventListener("pointerdown", onDown);
  stage.addEventListener("pointermove", onMove);
  stage.addEventListener("pointerup", onUp);
  stage.addEventListener("pointercancel", function () { drag = null; drawMarks(); });
  $("photo").addEventListener("error", function () {
    if (current()) say("The photo cannot be shown (it may have changed since prepare read it): rebuild the set.", true);
  });
  $("prev").addEventListener("click", function () { show(S.index - 1); });
  $("next").addEventListener("click", function () { show(S.index + 1); });
  $("negative").addEventListener("click", function () { setNegative(!S.negative); });
  $("undo").addEventListener("click", undo);
  $("reset").addEventListener("click", reset);
  $("accept").addEventListener("click", accept);
  $("exclude").addEventListener("click", exclude);
  $("forget").addEventListener("click", forget);
  $("reference").addEventListener("click", useAsReference);
  $("rebuild").addEventListener("click", rebuild);
  $("own-reference").addEventListener("click", ownReference);
  Array.prototype.forEach.call(document.querySelectorAll("#choices input"), function (input, i) {
    input.addEventListener("change", function () { choose(i); });
  });
  window.addEventListener("resize", function () { if (current()) layoutStage(current()); });

  reload().then(function () {
    if (S.set.photos.length === 0) say("This set has no photo to review.", true);
    else show(0);
    listen();
    hooks.ready = true;
  }).catch(function (e) { say(e.message, true); });
})();
`;
