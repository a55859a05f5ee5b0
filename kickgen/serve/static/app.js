// kickgen studio page: vanilla JS, no build step, no network beyond this server.
// Each generated kick is fetched once as a WAV: the bytes become a blob (download keeps working
// after the server evicts the kick) and an AudioBuffer decoded at 44.1 kHz (playback, waveform
// and spectrogram thumbnails, all computed here). Measurements (loudness, true peak, decay, root
// note) come with each kick from the server. The history and every kick's recipe are kept in
// localStorage, the crate (starred kicks, their WAVs too) in IndexedDB: both survive a reload.
"use strict";

const SAMPLE_RATE = 44100;
const COUNTS = [1, 2, 4, 8];
const MAX_BATCHES = 50; // older batches leave the page (and free their audio)
const $ = (sel, root = document) => root.querySelector(sel);

const state = {
  vocab: [],
  aliases: {}, // producer words -> the keywords they read as ({boomy: ["deep", "long"]})
  limits: null,
  batches: [], // newest first: {el, prompt, cfg_scale, steps, matched, kicks: [kick]}
  selected: null, // kick: {id, seed, url, batch, el, buffer, blobUrl, filename}
  audio: null, // AudioContext, created on the first gesture
  playing: null, // {source, kick, start}
  busy: false,
  crate: new Map(), // id -> starred kick {id, seed, recipe, measure, prompt, bytes, buffer, blobUrl}
  morphEnds: { a: null, b: null }, // crate ids
  morph: null, // {kicks: [frame], frame}
  reference: null, // A/B: {name, buffer, lufs}
  abSide: "kick",
  upload: null, // the dropped kick: {file, name, buffer, lufs}
  secondsPerUnit: Number(localStorage.getItem("kickgen.secondsPerUnit")) || null,
};

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("application/json")) body = await res.json();
  if (!res.ok) {
    const err = new Error((body && body.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.retryAfter = Number(res.headers.get("retry-after")) || 0;
    throw err;
  }
  return body;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

function debounce(fn, ms) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// ---------------------------------------------------------------- prompt and keyword chips

function promptWords() {
  return $("#prompt").value.toLowerCase().split(/[\s,;/_.-]+/).filter(Boolean);
}

function toggleKeyword(word) {
  const input = $("#prompt");
  const words = input.value.trim().split(/\s+/).filter(Boolean);
  const i = words.findIndex((w) => w.toLowerCase() === word);
  if (i >= 0) words.splice(i, 1);
  else words.push(word);
  input.value = words.join(" ");
  onPromptChange();
}

function renderChips(matched = null) {
  const box = $("#chips");
  const filter = $("#chip-filter").value.trim().toLowerCase();
  const words = promptWords();
  const active = new Set([...(matched || words), ...words.filter((w) => w in state.aliases)]);
  const shown = state.vocab.filter((w) => !filter || w.includes(filter));
  const aliases = Object.keys(state.aliases).filter((w) => !filter || w.includes(filter));
  const chip = (w, alias) =>
    el("button", {
      type: "button",
      class: "chip" + (alias ? " alias" : "") + (active.has(w) ? " active" : ""),
      role: "listitem",
      "data-word": w,
      title: alias ? `a producer's word: reads as ${state.aliases[w].join(" ")}` : "a keyword of the model",
      text: w,
      onclick: () => toggleKeyword(w),
    });
  box.replaceChildren(...shown.map((w) => chip(w, false)), ...aliases.map((w) => chip(w, true)));
  $("#chip-count").textContent =
    shown.length === state.vocab.length ? `${state.vocab.length}` : `${shown.length} / ${state.vocab.length}`;
}

const parsePrompt = debounce(async () => {
  const prompt = $("#prompt").value;
  const line = $("#parse");
  if (!prompt.trim()) {
    line.replaceChildren(el("span", { class: "muted", text: "no keywords: the model generates unconditionally" }));
    renderChips([]);
    return;
  }
  try {
    const info = await api(`/api/parse?prompt=${encodeURIComponent(prompt)}`);
    const parts = [];
    if (info.matched.length) {
      // words outside the vocabulary that were read as keywords show what they became
      const readAs = info.read_as || {};
      const covered = new Set(Object.values(readAs).flat());
      parts.push(el("span", { class: "muted", text: "heard " }));
      for (const [w, kws] of Object.entries(readAs)) {
        const guess = !(w in state.aliases);
        parts.push(el("span", { class: "word ok" + (guess ? " guessed" : ""), text: `${w} → ${kws.join(" ")}`,
                                title: guess ? `not a keyword: read as the closest one, ${kws.join(" ")}` : `a producer's word for ${kws.join(" ")}` }));
      }
      for (const w of info.matched) if (!covered.has(w)) parts.push(el("span", { class: "word ok", text: w }));
    } else {
      parts.push(el("span", { class: "muted", text: "no known keywords: unconditional" }));
    }
    if (info.ignored.length) {
      parts.push(el("span", { class: "muted", text: " · ignored " }));
      for (const w of info.ignored) {
        const hint = (info.suggestions[w] || []).slice(0, 3);
        parts.push(el("span", { class: "word bad", text: w, title: hint.length ? `did you mean ${hint.join(", ")}?` : "not in the vocabulary" }));
        for (const s of hint) {
          parts.push(el("button", { type: "button", class: "suggest", text: `→ ${s}`, onclick: () => replaceWord(w, s) }));
        }
      }
    }
    line.replaceChildren(...parts);
    renderChips(info.matched);
  } catch (err) {
    line.replaceChildren(el("span", { class: "bad", text: err.message }));
  }
}, 150);

function replaceWord(from, to) {
  const input = $("#prompt");
  const words = input.value.trim().split(/\s+/).map((w) => (w.toLowerCase() === from ? to : w));
  input.value = words.join(" ");
  onPromptChange();
}

function onPromptChange() {
  renderChips();
  parsePrompt();
}

// ---------------------------------------------------------------- controls

function setupControls() {
  const cfg = $("#cfg");
  const steps = $("#steps");
  const L = state.limits;
  if (L) {
    cfg.min = Math.max(L.cfg_scale.min, 1);
    cfg.max = Math.min(L.cfg_scale.max, 10);
    cfg.value = L.cfg_scale.default;
    steps.min = Math.max(L.steps.min, 5);
    steps.max = L.steps.max;
    steps.value = L.steps.default;
    $("#seed").max = L.seed.max;
    $("#prompt").maxLength = L.max_prompt_chars;
    // the clean-up's defaults are the server's (kickgen.producer.hygiene.HygieneConfig), as the CLI's
    $("#hy-lufs-target").value = L.hygiene.lufs;
    $("#hy-ceiling").value = L.hygiene.ceiling_dbtp;
  }
  const show = () => {
    $("#cfg-out").textContent = Number(cfg.value).toFixed(1);
    $("#steps-out").textContent = steps.value;
  };
  cfg.addEventListener("input", show);
  steps.addEventListener("input", show);
  show();

  const maxN = L ? L.n.max : 8;
  const def = L ? L.n.default : 4;
  const seg = $("#count");
  for (const n of COUNTS.filter((c) => c <= maxN)) {
    seg.append(
      el("button", {
        type: "button",
        role: "radio",
        class: n === def ? "on" : "",
        "aria-checked": String(n === def),
        "data-n": String(n),
        text: String(n),
        onclick: (e) => {
          for (const b of seg.children) {
            b.classList.toggle("on", b === e.currentTarget);
            b.setAttribute("aria-checked", String(b === e.currentTarget));
          }
        },
      }),
    );
  }
  $("#seed-clear").addEventListener("click", () => {
    $("#seed").value = "";
  });
}

function readParams() {
  const seedText = $("#seed").value.trim();
  return {
    prompt: $("#prompt").value.trim(),
    cfg_scale: Number($("#cfg").value),
    steps: Number($("#steps").value),
    n: Number($("#count .on").dataset.n),
    seed: seedText === "" ? null : Number(seedText),
  };
}

// ---------------------------------------------------------------- clean-up and key

const CLEANUP_KEY = "kickgen.cleanup";

function readHygiene() {
  // The clean-up toggles as the API's `hygiene` object; null keeps the reference output stage.
  const fade = $("#hy-fade").checked, align = $("#hy-align").checked;
  const lufs = $("#hy-lufs").checked, trim = $("#hy-trim").checked, key = $("#key").value;
  if (!fade && !align && !lufs && !trim && !key) return null;
  const h = { fade: fade ? "decay" : "reference", align_onset: align, trim };
  if (lufs) {
    h.level = "lufs";
    h.lufs = Number($("#hy-lufs-target").value);
    h.ceiling_dbtp = Number($("#hy-ceiling").value);
  }
  if (key) h.key = key;
  return h;
}

function setupCleanup() {
  const ids = ["hy-fade", "hy-align", "hy-lufs", "hy-trim", "hy-lufs-target", "hy-ceiling", "key", "strength", "more-strength"];
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(CLEANUP_KEY) || "{}"); } catch { saved = {}; }
  for (const id of ids) {
    const node = $(`#${id}`);
    if (id in saved) {
      if (node.type === "checkbox") node.checked = saved[id];
      else node.value = saved[id];
    }
    node.addEventListener("change", saveCleanup);
    node.addEventListener("input", showStrengths);
  }
  function saveCleanup() {
    const out = {};
    for (const id of ids) { const n = $(`#${id}`); out[id] = n.type === "checkbox" ? n.checked : n.value; }
    localStorage.setItem(CLEANUP_KEY, JSON.stringify(out));
  }
  function showStrengths() {
    $("#strength-out").textContent = Number($("#strength").value).toFixed(2);
    $("#more-strength-out").textContent = Number($("#more-strength").value).toFixed(2);
  }
  showStrengths();
}

function measureText(m) {
  if (!m) return "";
  const parts = [];
  if (m.lufs !== "") parts.push(`${Number(m.lufs).toFixed(1)} LUFS`);
  if (m.true_peak_dbtp !== "") parts.push(`${Number(m.true_peak_dbtp).toFixed(1)} dBTP`);
  parts.push(`decay ${Number(m.decay_40_s).toFixed(2)} s`);
  if (m.body_pitch_hz) parts.push(`${Number(m.body_pitch_hz).toFixed(0)} Hz`);
  return parts.join(" · ");
}

// ---------------------------------------------------------------- requests

let progressTimer = 0;

function startProgress(what, units) {
  const box = $("#progress");
  const fill = $(".fill", box);
  const label = $(".progress-label", box);
  const estimate = state.secondsPerUnit && units ? state.secondsPerUnit * units : null;
  const t0 = performance.now();
  box.hidden = false;
  box.classList.toggle("indeterminate", !estimate);
  const tick = () => {
    const s = (performance.now() - t0) / 1000;
    if (estimate) {
      // Ease toward 95 % over the estimate; it never claims to be done before the answer.
      fill.style.width = `${(95 * (1 - Math.exp(-2.5 * s / estimate))).toFixed(1)}%`;
      label.textContent = `${what} · ${s.toFixed(1)} s of ~${estimate.toFixed(1)} s`;
    } else {
      label.textContent = `${what} · ${s.toFixed(1)} s`;
    }
  };
  tick();
  progressTimer = setInterval(tick, 100);
}

function stopProgress() {
  clearInterval(progressTimer);
  const box = $("#progress");
  $(".fill", box).style.width = "100%";
  setTimeout(() => {
    box.hidden = true;
    $(".fill", box).style.width = "0%";
  }, 250);
}

function setBusy(busy, label = "Generating…") {
  state.busy = busy;
  const btn = $("#generate");
  btn.disabled = busy;
  btn.classList.toggle("busy", busy);
  $(".label", btn).textContent = busy ? label : "Generate";
  document.body.classList.toggle("busy", busy);
}

async function withRetry(send) {
  // One request; a full queue (503) is retried after its Retry-After, three times.
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (err.status === 503 && attempt < 3) {
        const wait = Math.max(1, err.retryAfter || 2);
        $(".progress-label").textContent = `Server busy, retrying in ${wait} s…`;
        await new Promise((r) => setTimeout(r, wait * 1000));
        continue;
      }
      throw err;
    }
  }
}

async function run(what, units, send) {
  // The page runs one model request at a time: progress, busy state, errors in one place.
  if (state.busy) return null;
  showError("");
  setBusy(true, `${what.split(" ")[0]}…`);
  startProgress(what, units);
  try {
    const t0 = performance.now();
    const res = await withRetry(send);
    if (res && res.seconds > 0 && units) {
      state.secondsPerUnit = res.seconds / units;
      localStorage.setItem("kickgen.secondsPerUnit", String(state.secondsPerUnit));
    }
    if (res) res.wall = (performance.now() - t0) / 1000;
    return res;
  } catch (err) {
    showError(err.status ? err.message : `could not reach the kickgen server (${err.message})`);
    return null;
  } finally {
    stopProgress();
    setBusy(false);
  }
}

const postJSON = (path, body) => () =>
  api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

function settings() {
  const p = readParams();
  return { prompt: p.prompt, cfg_scale: p.cfg_scale, steps: p.steps, n: p.n, seed: p.seed, hygiene: readHygiene() };
}

async function generate(params) {
  const what = `Generating ${params.n} kick${params.n > 1 ? "s" : ""}, ${params.steps} steps`;
  const res = await run(what, params.n * params.steps, postJSON("/api/generate", params));
  if (res) addBatch(res, { kind: "generate" });
}

function varyForm(fields) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (v === null || v === undefined) continue;
    form.append(k, k === "hygiene" ? JSON.stringify(v) : v instanceof Blob ? v : String(v));
  }
  return () => api("/api/vary", { method: "POST", body: form });
}

function uploadPrompt() {
  // An upload is steered by the prompt only when "steer with the prompt" is ticked.
  return $("#upload-use-prompt").checked ? $("#prompt").value.trim() : "";
}

function showUploadPrompt() {
  const text = $("#prompt").value.trim();
  $("#upload-prompt").textContent = text ? `"${text}"` : "(the prompt is empty)";
}

async function varyFile(file) {
  // Bring a kick: the file goes up once; its variations use the controls, and the prompt only
  // when the producer ticked "steer with the prompt" (never a leftover one, unasked).
  const p = { ...settings(), prompt: uploadPrompt() };
  state.upload = { file, name: file.name, buffer: null, lufs: null };
  $("#drop-name").textContent = file.name;
  $("#vary-again").disabled = false;
  $("#pin-upload").disabled = true;
  try { // the browser's own copy, for A/B (the server reads the file itself)
    const ctx = new OfflineAudioContext(1, SAMPLE_RATE, SAMPLE_RATE);
    state.upload.buffer = await ctx.decodeAudioData(await file.arrayBuffer());
  } catch { state.upload.buffer = null; }
  const strength = Number($("#strength").value);
  const what = `Varying ${file.name} · strength ${strength.toFixed(2)}`;
  const res = await run(what, p.n * p.steps, varyForm({ ...p, file, strength, seed: p.seed }));
  if (!res) return;
  state.upload.lufs = res.source ? res.source.lufs : null;
  state.upload.root = res.source ? res.source.root_note : "";
  $("#drop-name").textContent = `${file.name}${state.upload.root ? " · " + state.upload.root : ""}`;
  $("#pin-upload").disabled = !state.upload.buffer;
  const steer = p.prompt ? `prompt "${p.prompt}"` : "no prompt";
  addBatch(res, { kind: "vary", label: `variations of ${file.name} · ${steer} · strength ${strength.toFixed(2)}` });
}

async function moreLike(kick) {
  // Variations of that kick, a modest (adjustable) strength away.
  const p = settings();
  const b = kick.batch || {};
  const strength = Number($("#more-strength").value);
  const fields = { kick: kick.id, strength, prompt: b.prompt ?? p.prompt, cfg_scale: b.cfg_scale ?? p.cfg_scale,
                   steps: b.steps ?? p.steps, n: p.n, hygiene: p.hygiene };
  const res = await run(`Varying seed ${kick.seed} · strength ${strength.toFixed(2)}`, p.n * fields.steps, varyForm(fields));
  if (res) addBatch(res, { kind: "more", label: `more like seed ${kick.seed} · strength ${strength.toFixed(2)}` });
}

async function newSeeds(kick) {
  const b = kick.batch;
  const p = settings();
  const params = { prompt: b.prompt, cfg_scale: b.cfg_scale, steps: b.steps, n: p.n, seed: null, hygiene: p.hygiene };
  const res = await run(`Generating ${p.n} new seeds`, p.n * b.steps, postJSON("/api/generate", params));
  if (res) addBatch(res, { kind: "generate", label: `new seeds like seed ${kick.seed}` });
}

async function regenerate(kick) {
  // Any kick comes back from its recipe (the server may have restarted or evicted it).
  const res = await run(`Regenerating seed ${kick.seed}`, 0, postJSON("/api/regenerate", { recipe: kick.recipe }));
  if (!res) return null;
  const fresh = res.kicks[0];
  const old = kick.id;
  Object.assign(kick, { id: fresh.id, url: fresh.url, measure: fresh.measure });
  if (!kick.el) kick.bytes = await (await fetch(kick.url)).arrayBuffer(); // a crate kick
  if (kick.el) {
    kick.el.dataset.id = kick.id;
    kick.el.classList.remove("failed");
    kick.el.classList.add("loading");
    await loadKick(kick);
  }
  if (state.crate.has(old)) await recrate(old, kick);
  saveHistory();
  return kick;
}

// ---------------------------------------------------------------- batches and history

const HISTORY_KEY = "kickgen.history";
const MAX_SAVED_BATCHES = 12;

function batchMeta(res, info, seconds) {
  const head = info.label ? `${info.label} · ` : "";
  return head + `guidance ${res.cfg_scale} · ${res.steps} steps · ${res.kicks.length}` + (seconds ? ` in ${seconds.toFixed(1)} s` : "");
}

function addBatch(res, info, restoring = false) {
  $("#empty")?.remove();
  const batch = {
    prompt: res.prompt,
    cfg_scale: res.cfg_scale,
    steps: res.steps,
    matched: res.matched,
    meta: restoring ? info.meta : batchMeta(res, info, res.wall || res.seconds),
    kicks: [],
  };
  const words = res.matched.length
    ? res.matched.map((w) => el("span", { class: "word ok", text: w }))
    : [el("span", { class: "word", text: "unconditional" })];
  const head = el(
    "header",
    { class: "batch-head" },
    el("div", { class: "batch-words" }, ...words),
    el("div", { class: "batch-meta", text: batch.meta }),
  );
  const grid = el("div", { class: "grid" });
  batch.el = el("section", { class: "batch" }, head, grid);
  if (restoring) $("#results").append(batch.el);
  else $("#results").prepend(batch.el);
  if (restoring) state.batches.push(batch);
  else state.batches.unshift(batch);
  while (state.batches.length > MAX_BATCHES) dropBatch(state.batches.pop());

  res.kicks.forEach((k, i) => {
    const kick = { id: k.id, seed: k.seed, url: k.url, recipe: k.recipe, measure: k.measure, batch, index: i };
    kick.el = kickCard(kick);
    batch.kicks.push(kick);
    grid.append(kick.el);
    loadKick(kick);
  });
  if (!restoring) {
    select(batch.kicks[0]);
    saveHistory();
  }
  return batch;
}

function saveHistory() {
  const saved = state.batches.slice(0, MAX_SAVED_BATCHES).map((b) => ({
    prompt: b.prompt, cfg_scale: b.cfg_scale, steps: b.steps, matched: b.matched, meta: b.meta,
    kicks: b.kicks.map((k) => ({ id: k.id, seed: k.seed, url: k.url, recipe: k.recipe, measure: k.measure })),
  }));
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(saved));
  } catch { /* storage full: the crate (IndexedDB) still keeps the keepers */ }
}

function restoreHistory() {
  let saved = [];
  try { saved = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch { saved = []; }
  for (const b of saved) addBatch(b, { meta: b.meta }, true);
  if (state.batches.length) select(state.batches[0].kicks[0]);
}

function dropBatch(batch) {
  for (const k of batch.kicks) {
    if (state.selected === k) state.selected = null;
    if (state.playing && state.playing.kick === k) stop();
    if (k.blobUrl && !state.crate.has(k.id)) URL.revokeObjectURL(k.blobUrl);
  }
  batch.el.remove();
}

function kickCard(kick) {
  const wave = el("canvas", { class: "wave", width: "320", height: "56" });
  const spec = el("canvas", { class: "spec", width: "320", height: "88" });
  const download = el("a", { class: "download icon", title: "download WAV (D), or drag it onto the desktop or a DAW track",
                             "aria-label": "download", href: kick.url, download: "", draggable: "true" });
  download.addEventListener("dragstart", (e) => dragOut(e, kick));
  const card = el(
    "article",
    { class: "kick loading", tabindex: "-1", "data-id": kick.id, "data-seed": String(kick.seed), draggable: "true" },
    el(
      "div",
      { class: "thumbs", title: "click to play", onclick: () => { select(kick); play(kick); } },
      el("span", { class: "num", text: String(kick.index + 1) }),
      el("span", { class: "desc", text: "" }),
      el("span", { class: "span", title: "the pictures show the kick's first seconds, where it sounds" }),
      wave,
      spec,
      el("div", { class: "playhead" }),
    ),
    el("div", { class: "measure", text: measureText(kick.measure) }),
    el(
      "div",
      { class: "kick-foot" },
      el("button", { type: "button", class: "play icon", title: "play (Space)", "aria-label": "play", onclick: () => { select(kick); play(kick); } }),
      el("div", { class: "kick-info", title: "same seed + prompt + settings = same kick" },
        el("span", { class: "seed-label", text: "seed" }),
        el("span", { class: "seed-line" },
          el("span", { class: "seed", text: String(kick.seed) }),
          el("button", { type: "button", class: "copy-seed", title: "copy the seed", "aria-label": "copy the seed",
                         text: "copy", onclick: (e) => copySeed(kick, e.currentTarget) }))),
      el("button", { type: "button", class: "star", title: "star: keep it in the crate (S)", "aria-label": "star", text: "☆", onclick: () => toggleStar(kick) }),
      download,
    ),
    el(
      "div",
      { class: "kick-actions" },
      el("button", { type: "button", class: "more", title: "variations of this kick (M)", text: "More like this", onclick: () => moreLike(kick) }),
      el("button", { type: "button", class: "newseed ghost-small", title: "same prompt, new seeds (N)", text: "New seed", onclick: () => newSeeds(kick) }),
      el("button", { type: "button", class: "pin ghost-small", title: "pin as the A/B reference (P)", text: "Pin for A/B", onclick: () => pinKick(kick) }),
      el("button", { type: "button", class: "regen ghost-small", title: "regenerate from its recipe", text: "Regenerate", onclick: () => regenerate(kick) }),
    ),
  );
  card.addEventListener("mousedown", () => select(kick));
  card.addEventListener("dragstart", (e) => dragOut(e, kick));
  if (state.crate.has(kick.id)) card.classList.add("starred");
  return card;
}

async function copySeed(kick, button) {
  const text = String(kick.seed);
  try {
    await navigator.clipboard.writeText(text);
  } catch { // no clipboard API (plain http on another host): select the digits for Ctrl+C
    const range = document.createRange();
    range.selectNodeContents($(".seed", kick.el));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  button.textContent = "copied";
  button.dataset.copied = text;
  setTimeout(() => { button.textContent = "copy"; }, 1200);
}

function dragOut(e, kick) {
  // Chromium's DownloadURL: drop the kick's WAV onto the desktop or a DAW track.
  const name = kick.filename || `kick_s${kick.seed}.wav`;
  e.dataTransfer.setData("DownloadURL", `audio/wav:${name}:${new URL(kick.url, location.href).href}`);
  e.dataTransfer.setData("text/uri-list", new URL(kick.url, location.href).href);
  e.dataTransfer.effectAllowed = "copy";
}

async function loadKick(kick) {
  try {
    const res = await fetch(kick.url);
    if (!res.ok) throw Object.assign(new Error(`${res.status}`), { status: res.status });
    const disposition = res.headers.get("content-disposition") || "";
    kick.filename = (disposition.match(/filename="([^"]+)"/) || [])[1] || `kick_s${kick.seed}.wav`;
    kick.bytes = await res.arrayBuffer();
    await showKick(kick);
  } catch (err) {
    kick.el.classList.remove("loading");
    kick.el.classList.add("failed");
    $(".desc", kick.el).textContent = err.status === 404 ? "gone from the server: regenerate it" : `could not load (${err.message})`;
  }
}

async function showKick(kick) {
  if (kick.blobUrl) URL.revokeObjectURL(kick.blobUrl);
  kick.blobUrl = URL.createObjectURL(new Blob([kick.bytes], { type: "audio/wav" }));
  const link = $(".download", kick.el);
  link.href = kick.blobUrl;
  link.download = kick.filename;
  kick.buffer = await decode(kick.bytes);
  const samples = kick.buffer.getChannelData(0);
  kick.view = soundSpan(samples, kick.buffer.sampleRate);
  drawWave($(".wave", kick.el), samples, kick.view, kick.buffer.sampleRate);
  drawSpectrogram($(".spec", kick.el), samples, kick.buffer.sampleRate, kick.view);
  $(".span", kick.el).textContent = `0–${kick.view} s`;
  kick.el.dataset.view = String(kick.view);
  $(".desc", kick.el).textContent = (kick.measure && kick.measure.root_note) || "no pitch";
  $(".measure", kick.el).textContent = measureText(kick.measure);
  kick.el.classList.remove("loading", "failed");
  kick.el.classList.add("ready");
}

function decode(bytes) {
  const offline = new OfflineAudioContext(1, SAMPLE_RATE * 2, SAMPLE_RATE);
  return offline.decodeAudioData(bytes.slice(0));
}

// ---------------------------------------------------------------- crate (IndexedDB: survives reloads)

let dbPromise = null;

function db() {
  dbPromise ||= new Promise((resolve, reject) => {
    const req = indexedDB.open("kickgen", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("crate", { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return dbPromise;
}

async function store(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("crate", mode);
    const req = fn(tx.objectStore("crate"));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
  });
}

function crateEntry(kick) {
  const row = kick.recipe.rows[kick.recipe.index];
  return {
    id: kick.id, seed: kick.seed, url: kick.url, recipe: kick.recipe, measure: kick.measure,
    prompt: row.prompt_b ? `${row.prompt || "uncond"} → ${row.prompt_b}` : row.prompt || "",
    filename: kick.filename, wav: new Blob([kick.bytes], { type: "audio/wav" }), added: Date.now(),
  };
}

async function toggleStar(kick) {
  if (!kick || !kick.bytes) return;
  if (state.crate.has(kick.id)) {
    state.crate.delete(kick.id);
    await store("readwrite", (s) => s.delete(kick.id));
  } else {
    const entry = crateEntry(kick);
    await store("readwrite", (s) => s.put(entry));
    state.crate.set(kick.id, await crateKick(entry));
  }
  markStars();
  renderCrate();
}

async function recrate(oldId, kick) {
  const entry = { ...crateEntry(kick), added: state.crate.get(oldId).added };
  await store("readwrite", (s) => { s.delete(oldId); return s.put(entry); });
  state.crate.delete(oldId);
  state.crate.set(kick.id, await crateKick(entry));
  for (const end of ["a", "b"]) if (state.morphEnds[end] === oldId) state.morphEnds[end] = kick.id;
  markStars();
  renderCrate();
}

async function crateKick(entry) {
  const bytes = await entry.wav.arrayBuffer();
  return { ...entry, bytes, buffer: await decode(bytes), blobUrl: URL.createObjectURL(entry.wav) };
}

async function loadCrate() {
  const entries = (await store("readonly", (s) => s.getAll())) || [];
  entries.sort((a, b) => a.added - b.added);
  for (const e of entries) state.crate.set(e.id, await crateKick(e));
  markStars();
  renderCrate();
}

function markStars() {
  for (const b of state.batches) for (const k of b.kicks) {
    const on = state.crate.has(k.id);
    k.el.classList.toggle("starred", on);
    $(".star", k.el).textContent = on ? "★" : "☆";
  }
}

function renderCrate() {
  const list = $("#crate-list");
  const items = [...state.crate.values()];
  $("#crate-count").textContent = items.length ? `${items.length} kick${items.length > 1 ? "s" : ""}` : "";
  $("#export").disabled = !items.length;
  for (const end of ["a", "b"]) if (!state.crate.has(state.morphEnds[end])) state.morphEnds[end] = null;
  if (!items.length) {
    list.replaceChildren(el("p", { class: "hint crate-empty", text: "Star kicks (S) to keep them; the crate survives a reload." }));
  } else {
    list.replaceChildren(...items.map((c) => {
      const row = el("div", { class: "crate-item", "data-id": c.id, draggable: "true" },
        el("button", { type: "button", class: "play icon", title: "play", "aria-label": "play", onclick: () => playBuffer(c.buffer) }),
        el("div", { class: "crate-name" },
          el("span", { class: "crate-prompt", text: c.prompt || "unconditional" }),
          el("span", { class: "crate-meta", text: `seed ${c.seed}${c.measure && c.measure.root_note ? " · " + c.measure.root_note : ""}` })),
        el("button", { type: "button", class: "end" + (state.morphEnds.a === c.id ? " on" : ""), "data-end": "a", title: "morph from this kick", text: "A", onclick: () => setEnd("a", c.id) }),
        el("button", { type: "button", class: "end" + (state.morphEnds.b === c.id ? " on" : ""), "data-end": "b", title: "morph to this kick", text: "B", onclick: () => setEnd("b", c.id) }),
        el("button", { type: "button", class: "regen ghost-small", title: "regenerate from its recipe", text: "↻", onclick: () => regenerate(c) }),
        el("button", { type: "button", class: "unstar ghost-small", title: "take it out of the crate", text: "×", onclick: () => toggleStar(c) }),
      );
      row.addEventListener("dragstart", (e) => dragOut(e, c));
      return row;
    }));
  }
  const { a, b } = state.morphEnds;
  $("#morph-go").disabled = !(a && b && a !== b);
  $("#morph-ends").textContent = a && b ? `seed ${state.crate.get(a).seed} → seed ${state.crate.get(b).seed}` : "mark two crate kicks A and B";
}

function setEnd(end, id) {
  state.morphEnds[end] = state.morphEnds[end] === id ? null : id;
  renderCrate();
}

async function runHeld(what, units, makeSend) {
  // A request on crate kicks: those the server no longer holds (a restart, eviction) come back
  // from their recipes first, then the request is sent again with their new ids.
  let out = await run(what, units, async () => {
    try {
      return await makeSend()();
    } catch (err) {
      if (err.status !== 404) throw err;
      return { missing: err.message.match(/[0-9a-f]{16}/g) || [] };
    }
  });
  if (out && out.missing) {
    for (const id of out.missing) if (state.crate.has(id)) await regenerate(state.crate.get(id));
    out = await run(what, units, makeSend());
  }
  return out;
}

async function exportCrate() {
  // One zip of the crate: WAVs with their recipes, manifest.csv and an .sfz, as chosen.
  if (!state.crate.size || state.busy) return;
  const makeSend = () => {
    const body = { ids: [...state.crate.keys()], format: $("#pack-format").value,
                   sample_rate: Number($("#pack-rate").value), hygiene: readHygiene() };
    return async () => {
      const res = await fetch("/api/pack", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      if (res.ok) return { blob: await res.blob() };
      const detail = ((await res.json().catch(() => ({}))).detail) || `${res.status}`;
      throw Object.assign(new Error(detail), { status: res.status, retryAfter: Number(res.headers.get("retry-after")) || 0 });
    };
  };
  const out = await runHeld(`Packing ${state.crate.size} kicks`, 0, makeSend);
  if (!out || !out.blob) return;
  const link = el("a", { href: URL.createObjectURL(out.blob), download: "kickgen-crate.zip" });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---------------------------------------------------------------- morph

async function morphCrate() {
  const { a, b } = state.morphEnds;
  if (!a || !b) return;
  const p = settings();
  const frames = Number($("#morph-frames").value);
  const res = await runHeld(`Morphing ${frames} frames`, frames * p.steps, () =>
    postJSON("/api/morph", { a: state.morphEnds.a, b: state.morphEnds.b, frames, cfg_scale: p.cfg_scale,
                             steps: p.steps, hygiene: p.hygiene }));
  if (!res || !res.kicks) return;
  // The series is rendered once; scrubbing plays the nearest frame.
  const kicks = await Promise.all(res.kicks.map(async (k, i) => {
    const r = await fetch(k.url);
    const kick = { ...k, index: i, bytes: await r.arrayBuffer(), filename: `morph_${String(i).padStart(2, "0")}.wav` };
    kick.buffer = await decode(kick.bytes);
    return kick;
  }));
  state.morph = { kicks, label: res.prompt, frame: 0 };
  const panel = $("#morph");
  panel.hidden = false;
  panel.dataset.plays = "0";
  const ends = [state.morphEnds.a, state.morphEnds.b].map((id) => state.crate.get(id).seed);
  $("#morph-label").textContent = `seed ${ends[0]} → seed ${ends[1]} · ${kicks.length} frames`;
  const slider = $("#morph-slider");
  slider.max = String(kicks.length - 1);
  slider.value = "0";
  showFrame(0, false);
  panel.scrollIntoView({ block: "nearest" }); // inside the side column, which ends above the shortcut bar
}

function showFrame(i, audible = true) {
  const m = state.morph;
  if (!m) return;
  m.frame = Math.max(0, Math.min(m.kicks.length - 1, i));
  const k = m.kicks[m.frame];
  $("#morph-slider").value = String(m.frame);
  const frame = k.buffer.getChannelData(0);
  drawWave($("#morph-wave"), frame, soundSpan(frame, k.buffer.sampleRate), k.buffer.sampleRate);
  const t = m.kicks.length > 1 ? m.frame / (m.kicks.length - 1) : 0;
  $("#morph-frame").textContent = `frame ${m.frame + 1} / ${m.kicks.length} · t ${t.toFixed(2)}${k.measure.root_note ? " · " + k.measure.root_note : ""}`;
  $("#morph").dataset.frame = String(m.frame);
  $("#morph-star").textContent = state.crate.has(k.id) ? "★ starred" : "☆ star frame";
  if (audible) {
    playBuffer(k.buffer);
    $("#morph").dataset.plays = String(Number($("#morph").dataset.plays || 0) + 1);
  }
}

async function starFrame() {
  const m = state.morph;
  if (!m) return;
  const k = m.kicks[m.frame];
  if (!state.crate.has(k.id)) await toggleStar(k);
  showFrame(m.frame, false);
}

// ---------------------------------------------------------------- A/B (loudness-matched)

function pinKick(kick) {
  if (!kick || !kick.buffer) return;
  setReference({ name: `seed ${kick.seed}${kick.measure.root_note ? " · " + kick.measure.root_note : ""}`, buffer: kick.buffer, lufs: kick.measure.lufs });
}

function pinUpload() {
  const u = state.upload;
  if (!u || !u.buffer) return showError("the browser could not decode that file for A/B");
  setReference({ name: u.name, buffer: u.buffer, lufs: u.lufs });
}

function setReference(ref) {
  state.reference = ref;
  state.abSide = "kick";
  $("#ab-ref").textContent = `reference: ${ref.name}${ref.lufs !== "" && ref.lufs !== null ? ` (${Number(ref.lufs).toFixed(1)} LUFS)` : ""}`;
  $("#ab-ref").classList.remove("muted");
  $("#ab-flip").disabled = false;
}

function flipAB() {
  // Alternate: the reference (at the selected kick's loudness), then the selected kick.
  const ref = state.reference, kick = state.selected;
  if (!ref || !kick || !kick.buffer) return;
  state.abSide = state.abSide === "ref" ? "kick" : "ref";
  const box = $("#ab");
  box.dataset.side = state.abSide;
  if (state.abSide === "ref") {
    const a = Number(kick.measure.lufs), r = Number(ref.lufs);
    const db = kick.measure.lufs !== "" && ref.lufs !== "" && ref.lufs !== null && isFinite(a - r) ? a - r : 0;
    box.dataset.gainDb = db.toFixed(2);
    playBuffer(ref.buffer, Math.pow(10, db / 20));
    $("#ab-which").textContent = `A: reference ${db >= 0 ? "+" : "−"}${Math.abs(db).toFixed(1)} dB`;
  } else {
    play(kick);
    $("#ab-which").textContent = `B: seed ${kick.seed}`;
  }
}

// ---------------------------------------------------------------- thumbnails

const VIEWS = [0.25, 0.5, 0.75, 1, 1.5, 2]; // s: the spans a thumbnail may show
const VIEW_FLOOR_DB = -50; // a kick sounds until its last sample within this of the peak

function soundSpan(x, sr) {
  // The shortest of VIEWS that holds the kick down to VIEW_FLOOR_DB, plus 10 %: kicks decay in
  // 0.1-0.5 s, so a 2 s picture would be mostly empty.
  let peak = 0;
  for (let i = 0; i < x.length; i++) peak = Math.max(peak, Math.abs(x[i]));
  const floor = peak * Math.pow(10, VIEW_FLOOR_DB / 20);
  let last = 0;
  for (let i = x.length - 1; i >= 0; i--) if (Math.abs(x[i]) > floor) { last = i; break; }
  const seconds = (1.1 * last) / sr;
  return VIEWS.find((v) => v >= seconds) || VIEWS[VIEWS.length - 1];
}

function drawWave(canvas, x, seconds = x.length / SAMPLE_RATE, sr = SAMPLE_RATE) {
  // Min/max per pixel over the first `seconds`, with a faint tick every 0.1 s.
  x = x.subarray(0, Math.min(x.length, Math.round(seconds * sr)));
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "rgba(255,255,255,0.06)";
  ctx.fillRect(0, h / 2, w, 1);
  for (let t = 0.1; t < seconds - 1e-6; t += 0.1) ctx.fillRect(Math.round((t / seconds) * w), 0, 1, h);
  const grad = ctx.createLinearGradient(0, 0, w, 0);
  grad.addColorStop(0, "#ffb347");
  grad.addColorStop(0.5, "#ff6a3d");
  grad.addColorStop(1, "#c2305a");
  ctx.fillStyle = grad;
  const per = x.length / w;
  for (let px = 0; px < w; px++) {
    let lo = 1, hi = -1;
    const a = Math.floor(px * per), b = Math.min(x.length, Math.floor((px + 1) * per));
    for (let i = a; i < b; i++) {
      const v = x[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (hi < lo) continue;
    const y0 = (1 - hi) * h / 2, y1 = (1 - lo) * h / 2;
    ctx.fillRect(px, y0, 1, Math.max(1, y1 - y0));
  }
}

function fft(re, im) {
  // In-place iterative radix-2 FFT; length a power of two.
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang), wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
        const nr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = nr;
      }
    }
  }
}

// Magma-like colour map: stops of (position, r, g, b).
const CMAP = [
  [0.0, 10, 8, 20], [0.25, 60, 15, 90], [0.5, 170, 40, 100],
  [0.75, 250, 110, 60], [1.0, 255, 235, 160],
];
function colour(t) {
  t = Math.min(1, Math.max(0, t));
  for (let i = 1; i < CMAP.length; i++) {
    if (t <= CMAP[i][0]) {
      const [p0, ...c0] = CMAP[i - 1];
      const [p1, ...c1] = CMAP[i];
      const f = (t - p0) / (p1 - p0);
      return c0.map((c, k) => Math.round(c + f * (c1[k] - c)));
    }
  }
  return CMAP[CMAP.length - 1].slice(1);
}

function drawSpectrogram(canvas, x, sr, seconds = x.length / sr) {
  // STFT (Hann, 2048 / hop 256) over the first `seconds`, log-frequency rows 20 Hz - 16 kHz, 70 dB
  // range below the peak.
  const N = 2048, hop = 256;
  const padded = new Float32Array(Math.max(N, Math.round(seconds * sr)) + N);
  padded.set(x.subarray(0, Math.min(x.length, padded.length - N)), N / 2);
  x = padded;
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  const frames = Math.floor((x.length - N) / hop) + 1;
  const win = new Float64Array(N).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
  const fMin = 20, fMax = 16000;
  const rowBin = new Int32Array(h);
  for (let r = 0; r < h; r++) {
    const f = fMin * Math.pow(fMax / fMin, 1 - r / (h - 1));
    rowBin[r] = Math.min(N / 2, Math.round((f * N) / sr));
  }
  const cols = Math.min(w, frames);
  const db = new Float32Array(cols * h);
  let peak = -Infinity;
  const re = new Float64Array(N), im = new Float64Array(N);
  for (let c = 0; c < cols; c++) {
    const start = Math.floor((c * (frames - 1)) / Math.max(1, cols - 1)) * hop;
    for (let i = 0; i < N; i++) { re[i] = x[start + i] * win[i]; im[i] = 0; }
    fft(re, im);
    for (let r = 0; r < h; r++) {
      const k = rowBin[r];
      const v = 10 * Math.log10(re[k] * re[k] + im[k] * im[k] + 1e-12);
      db[c * h + r] = v;
      if (v > peak) peak = v;
    }
  }
  const img = ctx.createImageData(w, h);
  for (let px = 0; px < w; px++) {
    const c = Math.min(cols - 1, Math.floor((px * cols) / w));
    for (let r = 0; r < h; r++) {
      const [R, G, B] = colour((db[c * h + r] - peak + 70) / 70);
      const o = 4 * (r * w + px);
      img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

// ---------------------------------------------------------------- selection and playback

function select(kick) {
  if (!kick) return;
  if (state.selected && state.selected.el) state.selected.el.classList.remove("selected");
  state.selected = kick;
  kick.el.classList.add("selected");
  kick.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function startSource(buffer, gain = 1) {
  if (!state.audio) state.audio = new AudioContext();
  const audio = state.audio;
  if (audio.state === "suspended") audio.resume();
  stop();
  const source = audio.createBufferSource();
  source.buffer = buffer;
  const level = audio.createGain();
  level.gain.value = gain;
  source.connect(level).connect(audio.destination);
  return source;
}

function playBuffer(buffer, gain = 1) {
  // A crate kick, a morph frame or the A/B reference: no card to animate.
  if (!buffer) return;
  const source = startSource(buffer, gain);
  const playing = { source, kick: null };
  state.playing = playing;
  source.onended = () => { if (state.playing === playing) state.playing = null; };
  source.start();
}

function play(kick) {
  if (!kick || !kick.buffer) return;
  const source = startSource(kick.buffer);
  const audio = state.audio;
  const playing = { source, kick, start: audio.currentTime, wall: performance.now() };
  state.playing = playing;
  kick.el.classList.add("playing");
  kick.el.dataset.plays = String(Number(kick.el.dataset.plays || 0) + 1);
  source.onended = () => {
    kick.el.classList.remove("playing");
    if (state.playing === playing) state.playing = null;
  };
  source.start();
  const head = $(".playhead", kick.el);
  const dur = kick.buffer.duration;
  const view = kick.view || dur;
  const step = () => {
    if (state.playing !== playing) {
      head.style.opacity = 0;
      return;
    }
    // AudioContext time, or wall time while the output device is still starting.
    const t = Math.max(audio.currentTime - playing.start, 0) || (performance.now() - playing.wall) / 1000;
    head.style.opacity = t <= view ? 1 : 0;
    head.style.left = `${Math.min(100, (100 * t) / view)}%`;
    if (t < dur) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function stop() {
  if (state.playing) {
    const { source, kick } = state.playing;
    state.playing = null;
    if (kick) kick.el.classList.remove("playing");
    try { source.stop(); } catch { /* already stopped */ }
  }
}

function move(dx, dy) {
  const all = state.batches;
  if (!all.length) return;
  const cur = state.selected;
  if (!cur) return select(all[0].kicks[0]);
  const bi = all.indexOf(cur.batch);
  if (dy) {
    const nb = all[Math.min(all.length - 1, Math.max(0, bi + dy))];
    return select(nb.kicks[Math.min(cur.index, nb.kicks.length - 1)]);
  }
  const flat = all.flatMap((b) => b.kicks);
  const i = flat.indexOf(cur);
  select(flat[Math.min(flat.length - 1, Math.max(0, i + dx))]);
}

// ---------------------------------------------------------------- keyboard

function onKey(e) {
  const t = e.target;
  const typing = (t instanceof HTMLInputElement && !["range", "radio", "checkbox", "button", "file"].includes(t.type)) || t instanceof HTMLSelectElement;
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    generate(settings());
    return;
  }
  if (e.key === "Escape") {
    if (!$("#help").hidden) $("#help").hidden = true;
    else if (typing) t.blur();
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const sel = state.selected;
  switch (e.key) {
    case " ":
      e.preventDefault(); // not a page scroll, not a click on the focused button
      play(sel);
      break;
    case "ArrowRight": e.preventDefault(); move(1, 0); break;
    case "ArrowLeft": e.preventDefault(); move(-1, 0); break;
    case "ArrowDown": e.preventDefault(); move(0, 1); break;
    case "ArrowUp": e.preventDefault(); move(0, -1); break;
    case "m": case "M": if (sel) moreLike(sel); break;
    case "n": case "N": if (sel) newSeeds(sel); break;
    case "s": case "S": if (sel) toggleStar(sel); break;
    case "p": case "P": if (sel) pinKick(sel); break;
    case "a": case "A": flipAB(); break;
    case "e": case "E": exportCrate(); break;
    case ",": if (state.morph) showFrame(state.morph.frame - 1); break;
    case ".": if (state.morph) showFrame(state.morph.frame + 1); break;
    case "d": case "D": if (sel) $(".download", sel.el).click(); break;
    case "/": e.preventDefault(); $("#prompt").focus(); break;
    case "?": $("#help").hidden = !$("#help").hidden; break;
    default:
      if (/^[1-8]$/.test(e.key) && sel) {
        const k = sel.batch.kicks[Number(e.key) - 1];
        if (k) { select(k); play(k); }
      }
  }
}

// ---------------------------------------------------------------- bring a kick: drop anywhere

function setupDrop() {
  const zone = $("#drop");
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) zone.classList.remove("dragging"); });
  document.addEventListener("drop", (e) => {
    zone.classList.remove("dragging");
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    varyFile(file);
  });
  $("#file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) varyFile(file);
    e.target.value = "";
  });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("#file").click(); } });
  $("#vary-again").addEventListener("click", () => state.upload && varyFile(state.upload.file));
  $("#upload-use-prompt").addEventListener("change", showUploadPrompt);
  $("#prompt").addEventListener("input", showUploadPrompt);
  showUploadPrompt();
  $("#pin-upload").addEventListener("click", pinUpload);
}

// ---------------------------------------------------------------- server status

async function pollStatus() {
  const box = $("#status");
  try {
    const h = await api("/healthz");
    const busy = h.running + h.queued;
    box.textContent = busy ? `${h.running} running · ${h.queued} queued` : "ready";
    box.className = "status " + (busy ? "working" : "ok");
  } catch {
    box.textContent = "server offline";
    box.className = "status down";
  }
}

// ---------------------------------------------------------------- start

async function main() {
  try {
    const [vocab, limits] = await Promise.all([api("/api/vocab"), api("/api/limits")]);
    state.vocab = vocab.vocab;
    state.aliases = vocab.aliases || {};
    state.limits = limits;
  } catch (err) {
    showError(`could not load the vocabulary: ${err.message}`);
  }
  setupControls();
  setupCleanup();
  setupDrop();
  renderChips();
  parsePrompt();
  $("#form").addEventListener("submit", (e) => {
    e.preventDefault();
    generate(settings());
  });
  $("#prompt").addEventListener("input", onPromptChange);
  $("#chip-filter").addEventListener("input", () => renderChips());
  $("#chip-filter").addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
  $("#help-toggle").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });
  $("#export").addEventListener("click", exportCrate);
  $("#morph-go").addEventListener("click", morphCrate);
  $("#morph-slider").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  $("#morph-star").addEventListener("click", starFrame);
  $("#ab-flip").addEventListener("click", flipAB);
  document.addEventListener("keydown", onKey);
  try {
    await loadCrate();
  } catch (err) {
    showError(`the crate could not be read from this browser's storage (${err.message})`);
  }
  restoreHistory();
  pollStatus();
  setInterval(() => { if (!document.hidden) pollStatus(); }, 4000);
  document.body.classList.add("ready");
}

main();
