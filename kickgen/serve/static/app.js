// kickgen audition page: vanilla JS, no build step, no network beyond this server.
// Each generated kick is fetched once as a WAV: the bytes become a blob (download keeps working
// after the server evicts the kick) and an AudioBuffer decoded at 44.1 kHz (playback, waveform
// and spectrogram thumbnails, all computed here).
"use strict";

const SAMPLE_RATE = 44100;
const COUNTS = [1, 2, 4, 8];
const MAX_BATCHES = 50; // older batches leave the page (and free their audio)
const $ = (sel, root = document) => root.querySelector(sel);

const state = {
  vocab: [],
  limits: null,
  batches: [], // newest first: {el, prompt, cfg_scale, steps, matched, kicks: [kick]}
  selected: null, // kick: {id, seed, url, batch, el, buffer, blobUrl, filename}
  audio: null, // AudioContext, created on the first gesture
  playing: null, // {source, kick, start}
  busy: false,
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
  const active = new Set(matched || promptWords());
  const shown = state.vocab.filter((w) => !filter || w.includes(filter));
  box.replaceChildren(
    ...shown.map((w) =>
      el("button", {
        type: "button",
        class: "chip" + (active.has(w) ? " active" : ""),
        role: "listitem",
        "data-word": w,
        text: w,
        onclick: () => toggleKeyword(w),
      }),
    ),
  );
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
      parts.push(el("span", { class: "muted", text: "heard " }));
      for (const w of info.matched) parts.push(el("span", { class: "word ok", text: w }));
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

// ---------------------------------------------------------------- generation

let progressTimer = 0;

function startProgress(params) {
  const box = $("#progress");
  const fill = $(".fill", box);
  const label = $(".progress-label", box);
  const units = params.n * params.steps;
  const estimate = state.secondsPerUnit ? state.secondsPerUnit * units : null;
  const t0 = performance.now();
  box.hidden = false;
  box.classList.toggle("indeterminate", !estimate);
  const tick = () => {
    const s = (performance.now() - t0) / 1000;
    const what = `${params.n} kick${params.n > 1 ? "s" : ""}, ${params.steps} steps`;
    if (estimate) {
      // Ease toward 95 % over the estimate; it never claims to be done before the answer.
      fill.style.width = `${(95 * (1 - Math.exp(-2.5 * s / estimate))).toFixed(1)}%`;
      label.textContent = `Generating ${what} · ${s.toFixed(1)} s of ~${estimate.toFixed(1)} s`;
    } else {
      label.textContent = `Generating ${what} · ${s.toFixed(1)} s`;
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

function setBusy(busy) {
  state.busy = busy;
  const btn = $("#generate");
  btn.disabled = busy;
  btn.classList.toggle("busy", busy);
  $(".label", btn).textContent = busy ? "Generating…" : "Generate";
  document.body.classList.toggle("busy", busy);
}

async function generate(params, origin = null) {
  if (state.busy) return;
  showError("");
  setBusy(true);
  startProgress(params);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const t0 = performance.now();
        const res = await api("/api/generate", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(params),
        });
        const perUnit = res.seconds / (params.n * params.steps);
        if (perUnit > 0) {
          state.secondsPerUnit = perUnit;
          localStorage.setItem("kickgen.secondsPerUnit", String(perUnit));
        }
        addBatch(res, origin, (performance.now() - t0) / 1000);
        return;
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
  } catch (err) {
    showError(err.status ? err.message : `could not reach the kickgen server (${err.message})`);
  } finally {
    stopProgress();
    setBusy(false);
  }
}

function addBatch(res, origin, seconds) {
  $("#empty")?.remove();
  const batch = {
    prompt: res.prompt,
    cfg_scale: res.cfg_scale,
    steps: res.steps,
    matched: res.matched,
    kicks: [],
  };
  const words = res.matched.length
    ? res.matched.map((w) => el("span", { class: "word ok", text: w }))
    : [el("span", { class: "word", text: "unconditional" })];
  const head = el(
    "header",
    { class: "batch-head" },
    el("div", { class: "batch-words" }, ...words),
    el("div", {
      class: "batch-meta",
      text:
        (origin ? `more like seed ${origin.seed} · ` : "") +
        `guidance ${res.cfg_scale} · ${res.steps} steps · ${res.kicks.length} in ${seconds.toFixed(1)} s`,
    }),
  );
  const grid = el("div", { class: "grid" });
  batch.el = el("section", { class: "batch" }, head, grid);
  $("#results").prepend(batch.el);
  state.batches.unshift(batch);
  while (state.batches.length > MAX_BATCHES) dropBatch(state.batches.pop());

  res.kicks.forEach((k, i) => {
    const kick = { ...k, batch, index: i };
    kick.el = kickCard(kick);
    batch.kicks.push(kick);
    grid.append(kick.el);
    loadKick(kick);
  });
  select(batch.kicks[0]);
}

function dropBatch(batch) {
  for (const k of batch.kicks) {
    if (state.selected === k) state.selected = null;
    if (state.playing && state.playing.kick === k) stop();
    if (k.blobUrl) URL.revokeObjectURL(k.blobUrl);
  }
  batch.el.remove();
}

function kickCard(kick) {
  const wave = el("canvas", { class: "wave", width: "320", height: "56" });
  const spec = el("canvas", { class: "spec", width: "320", height: "88" });
  const card = el(
    "article",
    { class: "kick loading", tabindex: "-1", "data-id": kick.id, "data-seed": String(kick.seed) },
    el(
      "div",
      { class: "thumbs", title: "click to play", onclick: () => { select(kick); play(kick); } },
      el("span", { class: "num", text: String(kick.index + 1) }),
      el("span", { class: "desc", text: "" }),
      wave,
      spec,
      el("div", { class: "playhead" }),
    ),
    el(
      "div",
      { class: "kick-foot" },
      el("button", { type: "button", class: "play icon", title: "play (Space)", "aria-label": "play", onclick: () => { select(kick); play(kick); } }),
      el("div", { class: "kick-info", title: "same seed + prompt + settings = same kick" },
        el("span", { class: "seed-label", text: "seed" }),
        el("span", { class: "seed", text: String(kick.seed) })),
      el("button", { type: "button", class: "more", title: "same prompt, new seed (M)", text: "More like this", onclick: () => moreLike(kick) }),
      el("a", { class: "download icon", title: "download WAV (D)", "aria-label": "download", href: kick.url, download: "" }),
    ),
  );
  card.addEventListener("mousedown", () => select(kick));
  return card;
}

async function loadKick(kick) {
  try {
    const res = await fetch(kick.url);
    if (!res.ok) throw new Error(`${res.status}`);
    const disposition = res.headers.get("content-disposition") || "";
    kick.filename = (disposition.match(/filename="([^"]+)"/) || [])[1] || `kick_s${kick.seed}.wav`;
    const bytes = await res.arrayBuffer();
    kick.blobUrl = URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
    const link = $(".download", kick.el);
    link.href = kick.blobUrl;
    link.download = kick.filename;
    const offline = new OfflineAudioContext(1, SAMPLE_RATE * 2, SAMPLE_RATE);
    kick.buffer = await offline.decodeAudioData(bytes);
    const samples = kick.buffer.getChannelData(0);
    drawWave($(".wave", kick.el), samples);
    drawSpectrogram($(".spec", kick.el), samples, kick.buffer.sampleRate);
    $(".desc", kick.el).textContent = describe(samples, kick.buffer.sampleRate);
    kick.el.classList.remove("loading");
    kick.el.classList.add("ready");
  } catch (err) {
    kick.el.classList.remove("loading");
    kick.el.classList.add("failed");
    $(".desc", kick.el).textContent = `could not load (${err.message})`;
  }
}

function moreLike(kick) {
  const b = kick.batch;
  const n = Number($("#count .on").dataset.n);
  generate({ prompt: b.prompt, cfg_scale: b.cfg_scale, steps: b.steps, n, seed: null }, kick);
}

// ---------------------------------------------------------------- thumbnails

function drawWave(canvas, x) {
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "rgba(255,255,255,0.06)";
  ctx.fillRect(0, h / 2, w, 1);
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

function drawSpectrogram(canvas, x, sr) {
  // STFT (Hann, 2048 / hop 256), log-frequency rows 20 Hz - 16 kHz, 70 dB range below the peak.
  const N = 2048, hop = 256;
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

function describe(x, sr) {
  // Decay: time from the peak until the 10 ms RMS envelope stays below -40 dB of the peak.
  let peak = 0, at = 0;
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]) > peak) { peak = Math.abs(x[i]); at = i; }
  if (peak === 0) return "silent";
  const win = Math.round(sr / 100);
  let last = at;
  for (let i = at; i + win <= x.length; i += win) {
    let s = 0;
    for (let j = i; j < i + win; j++) s += x[j] * x[j];
    if (Math.sqrt(s / win) > peak * 0.01) last = i + win;
  }
  return `decay ${((last - at) / sr).toFixed(2)} s`;
}

// ---------------------------------------------------------------- selection and playback

function select(kick) {
  if (!kick) return;
  if (state.selected) state.selected.el.classList.remove("selected");
  state.selected = kick;
  kick.el.classList.add("selected");
  kick.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function play(kick) {
  if (!kick || !kick.buffer) return;
  if (!state.audio) state.audio = new AudioContext();
  const audio = state.audio;
  if (audio.state === "suspended") audio.resume();
  stop();
  const source = audio.createBufferSource();
  source.buffer = kick.buffer;
  source.connect(audio.destination);
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
  const step = () => {
    if (state.playing !== playing) {
      head.style.opacity = 0;
      return;
    }
    // AudioContext time, or wall time while the output device is still starting.
    const t = Math.max(audio.currentTime - playing.start, 0) || (performance.now() - playing.wall) / 1000;
    head.style.opacity = 1;
    head.style.left = `${Math.min(100, (100 * t) / dur)}%`;
    if (t < dur) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function stop() {
  if (state.playing) {
    const { source, kick } = state.playing;
    state.playing = null;
    kick.el.classList.remove("playing");
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
  const typing = t instanceof HTMLInputElement && !["range", "radio", "checkbox", "button"].includes(t.type);
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    generate(readParams());
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
    state.limits = limits;
  } catch (err) {
    showError(`could not load the vocabulary: ${err.message}`);
  }
  setupControls();
  renderChips();
  parsePrompt();
  $("#form").addEventListener("submit", (e) => {
    e.preventDefault();
    generate(readParams());
  });
  $("#prompt").addEventListener("input", onPromptChange);
  $("#chip-filter").addEventListener("input", () => renderChips());
  $("#chip-filter").addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
  $("#help-toggle").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });
  document.addEventListener("keydown", onKey);
  pollStatus();
  setInterval(() => { if (!document.hidden) pollStatus(); }, 4000);
  document.body.classList.add("ready");
}

main();
