// comfy-papa preference picker panel: a gallery inside the PAPA Preference Picker node and a
// floating dialog, both views of one shared state. Uses only documented frontend APIs:
// app.registerExtension, api.addEventListener / api.fetchApi, node.addDOMWidget, app.graph.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_ID = "PAPAPreferencePicker";
const CYCLE = { null: "like", like: "dislike", dislike: "skip", skip: "like" };
const ICON = { like: "\u2713", dislike: "\u2717", skip: "\u2013" };
const WORD = { like: "liked", dislike: "disliked", skip: "skipped" };
const KEY_LABEL = { l: "like", d: "dislike", s: "skip" };
const HELP = "Click: like \u2192 dislike \u2192 skip \u00b7 1-9, 0 (10th) pick \u00b7 L/D/S label \u00b7 " +
  "Space enlarge \u00b7 arrows move \u00b7 Enter submit \u00b7 Esc cancel round";
const PIXELATED_BELOW = 128; // natural width (px) under which images scale pixel-sharp
const FAILED_ROUND = "Round not trained \u2014 labels kept.";

// ---- shared state -------------------------------------------------------------------------
const state = {
  req: null, // the open request (server payload) for this tab
  labels: [], // per candidate: null | "like" | "dislike" | "skip"
  selected: 0,
  enlarged: false,
  busy: false,
  message: "",
  progress: null, // last papa.train_progress event of this tab's own run
  running: false, // a prompt this tab queued is executing (see the listeners in setup)
  profile: null, // the profile of this tab's current round, once a request named it
};
const views = new Set(); // every mounted gallery (node widgets + dialog)
const smallImage = new Map(); // image URL -> natural width < PIXELATED_BELOW, once loaded

function setState(patch) {
  Object.assign(state, patch);
  for (const v of views) v.render();
}

function openRequest(req) {
  if (!req || req.client_id !== api.clientId) return;
  if (state.req && state.req.request_id === req.request_id) return;
  setState({
    req,
    labels: req.candidates.map(() => null),
    selected: 0,
    enlarged: false,
    busy: false,
    message: "",
    progress: null, // a new round: the last round's training bar is history
    profile: req.profile ?? null,
  });
  dialog.open();
}

function closeRequest(message) {
  setState({ req: null, labels: [], enlarged: false, busy: false, message });
  dialog.close();
}

function imageUrl(ref) {
  const q = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder, type: ref.type });
  return api.apiURL(`/view?${q}`);
}

function roundCounts() {
  const c = { like: 0, dislike: 0, skip: 0 };
  for (const l of state.labels) if (l) c[l] += 1;
  return c;
}

// "3 liked · 1 disliked · 2 skipped": counts in words, never "✗ 4 – 2" (reads like a range).
function countText(c, kinds = ["like", "dislike", "skip"]) {
  return kinds.map((k) => `${c[k] ?? 0} ${WORD[k]}`).join(" \u00b7 ");
}

// " · about 4 s left": the round's pace so far (server seconds since the round started, per
// finished step) times the steps still to go; nothing before the first step or after the last.
function timeLeft(p) {
  if (typeof p.elapsed !== "number" || !(p.step > 0) || p.step >= p.steps) return "";
  const s = (p.elapsed / p.step) * (p.steps - p.step);
  const words = s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
  return ` \u00b7 about ${words} left`;
}

// ---- server calls -------------------------------------------------------------------------
async function post(path, body) {
  const res = await api.fetchApi(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await res.json();
  } catch {
    data = { error: `HTTP ${res.status}` };
  }
  return { status: res.status, data };
}

async function submit() {
  const req = state.req;
  if (!req || state.busy || !state.labels.some((l) => l)) return;
  setState({ busy: true, message: "Sending\u2026" });
  const labels = state.labels.map((l) => l ?? "skip");
  try {
    const { status, data } = await post("/papa/feedback", {
      request_id: req.request_id,
      client_id: req.client_id, // only the tab that queued the request may answer it (else 403)
      labels,
    });
    if (status === 200) {
      // The round may already have failed while the labels were on their way (Fine-tune refuses
      // fast): that news is the newer one, and it already says the labels were kept.
      if (state.message === FAILED_ROUND) closeRequest(FAILED_ROUND);
      else closeRequest(`Saved: ${countText(data.labels)}. ` +
        `In total ${countText(data.counts, ["like", "dislike"])}.`);
    } else if (status === 409) {
      closeRequest(`Not saved: ${data.error}`);
    } else {
      setState({ busy: false, message: `Not saved: ${data.error}` });
    }
  } catch (e) {
    setState({ busy: false, message: `Not saved (no answer from the server): ${e}` });
  }
}

async function cancelRound() {
  const req = state.req;
  if (!req || state.busy) return;
  setState({ busy: true, message: "Cancelling\u2026" });
  try {
    const { status, data } = await post("/papa/cancel", {
      request_id: req.request_id,
      client_id: req.client_id,
    });
    closeRequest(status === 200 ? "Round cancelled." : `Cancel refused: ${data.error}`);
  } catch (e) {
    setState({ busy: false, message: `Cancel failed: ${e}` });
  }
}

async function refreshPending() {
  if (!api.clientId) return;
  const res = await api.fetchApi(`/papa/pending?client_id=${encodeURIComponent(api.clientId)}`);
  if (!res.ok) return;
  const { pending } = await res.json();
  if (pending.length) openRequest(pending[0]);
  else if (state.req) closeRequest("");
}

// ---- one gallery view ---------------------------------------------------------------------
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function label(i, value) {
  const labels = state.labels.slice();
  labels[i] = value;
  setState({ labels, selected: i });
}

function handleKey(e) {
  if (!state.req || e.ctrlKey || e.metaKey || e.altKey) return;
  const n = state.labels.length;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const cols = Math.min(4, n);
  const move = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[key];
  const digit = /^[0-9]$/.test(key) ? (Number(key) + 9) % 10 : -1; // 1 -> 0, ..., 0 -> 9
  if (digit >= 0 && digit < n) setState({ selected: digit });
  else if (key in KEY_LABEL) label(state.selected, KEY_LABEL[key]);
  else if (key === " ") setState({ enlarged: !state.enlarged });
  else if (move) setState({ selected: (state.selected + move + n) % n });
  else if (key === "Enter") submit();
  else if (key === "Escape") cancelRound();
  else return;
  e.preventDefault();
  e.stopPropagation();
}

class Gallery {
  constructor(node = null) {
    this.node = node; // null: the dialog, which always shows this tab's request
    this.root = el("div", "papa-picker");
    this.root.tabIndex = 0;
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", "PAPA preference picker");
    this.root.addEventListener("keydown", handleKey);
    views.add(this);
    this.render();
  }

  destroy() {
    views.delete(this);
  }

  mine() {
    const r = state.req;
    // node.id is read now, not at creation: it is assigned when the node joins the graph.
    return r && (this.node === null || String(r.node_id) === String(this.node.id)) ? r : null;
  }

  render() {
    const hadFocus = this.root.contains(document.activeElement);
    const req = this.mine();
    this.root.replaceChildren();
    this.root.classList.toggle("papa-idle", !req);
    if (req && this.node !== null) {
      const reopen = el("button", "papa-reopen", "Open panel");
      reopen.type = "button";
      reopen.addEventListener("click", () => dialog.open());
      this.root.append(reopen);
    }
    if (req) {
      this.root.append(this.header(req), state.enlarged ? this.zoom(req) : this.grid(req));
      this.root.append(el("div", "papa-help", HELP), this.actions());
    } else if (!state.message && !state.progress) {
      this.root.append(el("div", "papa-waiting", "Waiting for candidates\u2026"));
    }
    const msg = el("div", "papa-msg", state.message);
    msg.setAttribute("role", "status");
    this.root.append(msg, this.progress());
    if (hadFocus) this.root.focus();
  }

  header(req) {
    const h = el("div", "papa-head");
    const who = req.profile ? `Profile ${req.profile} \u00b7 round ${req.round}` : "No profile";
    h.append(el("span", "papa-title", who));
    const c = roundCounts();
    const total = req.counts || { like: 0, dislike: 0 };
    const sum = { like: total.like + c.like, dislike: total.dislike + c.dislike };
    const counts = el("span", "papa-counts");
    counts.append(
      el("span", "papa-total", `In total ${countText(sum, ["like", "dislike"])}`),
      el("span", "papa-round-counts", `This round ${countText(c)}`),
    );
    h.append(counts);
    return h;
  }

  tile(req, cand, i) {
    const lab = state.labels[i];
    const t = el("button", `papa-tile papa-${lab ?? "none"}`);
    t.type = "button";
    t.dataset.index = String(i);
    if (i === state.selected) t.classList.add("papa-selected");
    t.setAttribute("aria-label", `Candidate ${i + 1}, seed ${cand.seed}: ${lab ? WORD[lab] : "not labelled"}`);
    t.setAttribute("aria-pressed", String(Boolean(lab)));
    const img = el("img");
    img.src = imageUrl(cand.image);
    // Small images (the digits are 32 px) scale pixel-sharp; smoothing only blurs them. The width
    // is remembered per URL so a re-render does not flash a smoothed frame first.
    const pixelate = (small) => img.classList.toggle("papa-pixelated", small);
    if (smallImage.has(img.src)) pixelate(smallImage.get(img.src));
    img.addEventListener("load", () => {
      smallImage.set(img.src, img.naturalWidth < PIXELATED_BELOW);
      pixelate(smallImage.get(img.src));
    });
    img.alt = `Candidate ${i + 1}`;
    img.draggable = false;
    t.append(img, el("span", "papa-num", String(i + 1)));
    if (lab) t.append(el("span", "papa-badge", ICON[lab]));
    t.addEventListener("click", () => label(i, CYCLE[lab]));
    t.addEventListener("dblclick", () => setState({ selected: i, enlarged: true }));
    return t;
  }

  grid(req) {
    const g = el("div", "papa-grid");
    g.style.setProperty("--papa-cols", String(Math.min(4, req.candidates.length)));
    req.candidates.forEach((c, i) => g.append(this.tile(req, c, i)));
    return g;
  }

  zoom(req) {
    const z = el("div", "papa-zoom");
    const i = Math.min(state.selected, req.candidates.length - 1);
    const t = this.tile(req, req.candidates[i], i);
    t.classList.add("papa-big");
    const back = el("button", "papa-unzoom", "Back to grid (Space)");
    back.type = "button";
    back.addEventListener("click", () => setState({ enlarged: false }));
    z.append(t, back);
    return z;
  }

  actions() {
    const a = el("div", "papa-actions");
    const cancel = el("button", "papa-cancel", "Cancel round (Esc)");
    cancel.type = "button";
    cancel.disabled = state.busy;
    cancel.addEventListener("click", cancelRound);
    const n = state.labels.filter((l) => l).length;
    const send = el("button", "papa-submit", `Submit ${n}/${state.labels.length} (Enter)`);
    send.type = "button";
    send.disabled = state.busy || n === 0;
    send.title = "Unlabelled candidates are sent as skip.";
    send.addEventListener("click", submit);
    a.append(cancel, send);
    return a;
  }

  progress() {
    const p = state.progress;
    const box = el("div", "papa-progress");
    if (!p) {
      box.hidden = true;
      return box;
    }
    const bar = el("progress");
    bar.max = p.steps;
    bar.value = p.step;
    const who = p.profile ? ` ${p.profile}` : "";
    const left = timeLeft(p);
    // What the round learns from, in plain words; the raw numbers stay in the tooltip.
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const from =
      typeof p.likes === "number"
        ? ` \u00b7 learning from ${plural(p.likes, "like")}, ${plural(p.dislikes ?? 0, "dislike")}`
        : "";
    const line = `Fine-tuning${who}: step ${p.step}/${p.steps}${left}${from}`;
    const text = el("span", "papa-progress-text", line);
    const numbers = [];
    if (typeof p.loss === "number") numbers.push(`training loss ${p.loss.toFixed(4)}`);
    if (typeof p.drift === "number") {
      numbers.push(`distance from the original model ${p.drift.toExponential(2)}`);
    }
    if (numbers.length) text.title = numbers.join(" \u00b7 ");
    box.append(bar, text);
    return box;
  }
}

// ---- floating dialog ----------------------------------------------------------------------
const dialog = {
  overlay: null,
  gallery: null,
  open() {
    if (!this.overlay) {
      this.overlay = el("div", "papa-overlay");
      this.overlay.setAttribute("role", "dialog");
      this.overlay.setAttribute("aria-modal", "true");
      this.overlay.setAttribute("aria-label", "PAPA: label the candidates");
      const box = el("div", "papa-dialog");
      const bar = el("div", "papa-dialog-bar");
      bar.append(el("span", "papa-dialog-title", "PAPA \u00b7 which candidates do you like?"));
      const hide = el("button", "papa-hide", "Hide");
      hide.type = "button";
      hide.title = "Hide this dialog; the gallery in the Preference Picker node stays.";
      hide.addEventListener("click", () => this.close());
      bar.append(hide);
      this.gallery = new Gallery(null);
      box.append(bar, this.gallery.root);
      this.overlay.append(box);
    }
    if (!this.overlay.isConnected) document.body.append(this.overlay);
    this.gallery.root.focus();
  },
  close() {
    this.overlay?.remove();
  },
};

// ---- the node's DOM widget ----------------------------------------------------------------
function addGalleryWidget(node) {
  const gallery = new Gallery(node);
  const widget = node.addDOMWidget("papa_gallery", "papa-picker", gallery.root, {
    getMinHeight: () => 260,
    hideOnZoom: false,
  });
  widget.serialize = false; // view only: never part of the workflow or the prompt
  const removed = node.onRemoved;
  node.onRemoved = function () {
    gallery.destroy();
    return removed?.apply(this, arguments);
  };
}

function loadCss() {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("./papa_picker.css", import.meta.url).href;
  document.head.append(link);
}

app.registerExtension({
  name: "comfy_papa.picker",
  async setup() {
    loadCss();
    api.addEventListener("papa.request", (e) => openRequest(e.detail));
    api.addEventListener("papa.request_done", (e) => {
      if (state.req && state.req.request_id === e.detail.request_id) {
        const why = { timeout: "Timed out.", cancelled: "Round cancelled.", interrupted: "Run interrupted." };
        closeRequest(why[e.detail.reason] ?? state.message);
      }
    });
    // Training progress is broadcast to every tab. Show it only while this tab's own prompt runs
    // (the server sends execution_start / executing / execution_* to the tab that queued it, and
    // "executing" again after a reconnect) and, once a request named this round's profile, only
    // for that profile: another tab's round never shows here, and a new run starts with no bar.
    api.addEventListener("papa.train_progress", (e) => {
      const p = e.detail;
      if (!state.running || (state.profile && p?.profile !== state.profile)) return;
      setState({ progress: p });
    });
    api.addEventListener("execution_start", () =>
      setState({ running: true, progress: null, profile: null, message: "" }),
    );
    api.addEventListener("executing", (e) => {
      if (e.detail != null) {
        if (!state.running) setState({ running: true });
      } else if (state.running) setState({ running: false });
    });
    api.addEventListener("execution_success", () => setState({ running: false }));
    const failed = (e) => {
      if (!state.running) return; // not this tab's run (an interrupt is broadcast)
      const p = state.progress;
      if (e.detail?.node_type === "PAPAFineTune" || (p && p.step < p.steps)) {
        // The profile stays at its last complete round; the labels were saved on Submit.
        setState({ running: false, progress: null, message: FAILED_ROUND });
      } else {
        setState({ running: false });
      }
    };
    api.addEventListener("execution_error", failed);
    api.addEventListener("execution_interrupted", failed);
    // The client id survives a reload (sessionStorage); ask for this tab's open request again
    // once the socket has told us which id we have, and after every reconnect.
    let asked = null;
    const askOnce = () => {
      if (api.clientId && api.clientId !== asked) {
        asked = api.clientId;
        refreshPending().catch((e) => console.warn("comfy-papa: pending lookup failed", e));
      }
    };
    api.addEventListener("status", askOnce);
    api.addEventListener("reconnected", () => {
      asked = null;
      askOnce();
    });
    askOnce(); // the socket may have said hello before this extension was set up
    window.comfyPapaPicker = { state, refreshPending };
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      addGalleryWidget(this);
      return r;
    };
  },
});
