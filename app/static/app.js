// The search page: plain DOM, no build step, everything from this server.
"use strict";

const KEY_STORE = "retrieval.apiKey";
const SHOWN_TAGS = 6; // chips per result; the record keeps more
const JOB_POLL_MS = 1000; // how often an upload's job is asked for while it is queued or tagged
const RECENT_JOBS = 10; // the service's latest uploads listed when the page opens, so a reload keeps them
// from /health/ready (clips: null until known); jobsListed once the recent uploads were asked for
const state = { writesEnabled: true, protectReads: false, clips: null, jobsListed: false };
const SCORE_TITLES = {
  vector: "cosine similarity to the query",
  keyword: "BM25 score of the query's words",
  hybrid: "reciprocal-rank fusion of the sound and keyword rankings",
};

const $ = (id) => document.getElementById(id);
const apiKey = () => sessionStorage.getItem(KEY_STORE) || "";

function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: names come from users
  return node;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

function formatSeconds(s) {
  const m = Math.floor(s / 60);
  const rest = (s - 60 * m).toFixed(1).padStart(4, "0");
  return m ? `${m}:${rest}` : `${s.toFixed(1)} s`;
}

// With protected reads an <audio src> cannot send the key, so the file is fetched with it instead.
// The service's audio URLs play as they are: with protected reads they are signed links (app/security.py),
// so the player streams them (Range requests) without the key.
function attachAudio(audio, url) {
  audio.src = url;
}

function renderTags(tags) {
  const list = el("ul", "tags");
  for (const t of tags.slice(0, SHOWN_TAGS)) {
    const chip = el("li", "tag", `${t.label} ${Math.round(100 * t.probability)}%`);
    chip.title = `probability ${(100 * t.probability).toFixed(1)} %`;
    list.append(chip);
  }
  return list;
}

// Scores by mode: cosine (at most 1) for vector search; BM25 and fused scores are drawn against the best one.
function renderHit(hit, rank, mode = "vector", top = 1) {
  const item = el("li", "result");
  item.dataset.id = hit.id;
  const head = el("div", "result-head");
  const name = el("h3", "name", hit.name); // results are reached by heading, each named by its clip
  head.append(el("span", "rank", `${rank}.`), name);
  head.title = "drag into a DAW or a folder: the whole clip";
  DragOut.attach(head, DragOut.whole(hit)); // dragout.js: the head is the handle, the players keep their drags
  const score = el("span", "score", hit.score.toFixed(3));
  score.title = SCORE_TITLES[mode];
  score.setAttribute("aria-label", `score ${hit.score.toFixed(3)} (${SCORE_TITLES[mode]})`);
  const duration = el("span", "duration", formatSeconds(hit.duration));
  duration.setAttribute("aria-label", `lasts ${formatSeconds(hit.duration)}`);
  head.append(score, duration, DragOut.wholeLink(hit)); // the whole file by keyboard too
  const bar = el("div", "bar");
  const fill = el("div", "bar-fill");
  fill.style.width = `${Math.max(0, Math.min(1, hit.score / (mode === "vector" ? 1 : top))) * 100}%`;
  bar.append(fill);
  const audio = Players.add(el("audio"));
  audio.controls = true;
  audio.preload = "none";
  attachAudio(audio, hit.audio_url);
  item.append(head, bar, Waveform.render(hit, audio), audio, renderTags(hit.tags), refineButtons(hit));
  renderMetadata(item, hit); // metadata.js
  return item;
}

// What an answer of nothing means: an empty collection, or nothing that matches (the filters, the words).
function nothingFound(request) {
  if (state.clips === 0) {
    return state.writesEnabled
      ? "No clips yet: the collection is empty. Add some with the form below (with the API key)."
      : "No clips yet: the collection is empty (clips are added with `retrieval index add`).";
  }
  return `Nothing found for ${request.label}${request.filtered ? " with these filters" : ""}.`;
}

// The answer's heading: what was searched for, as the page names it (file names, each text quoted once).
function showResults(data, request) {
  Players.stopAll();
  const list = $("results");
  const top = Math.max(...data.results.map((h) => h.score), Number.MIN_VALUE);
  list.replaceChildren(...data.results.map((hit, i) => renderHit(hit, i + 1, data.mode, top)));
  Exports.show(data, request.moments); // exports.js
  const count = data.results.length;
  if (count && state.clips === 0) state.clips = null; // added since the status was read (index add)
  const what = request.moments ? (count === 1 ? "moment" : "moments") : (count === 1 ? "clip" : "clips");
  $("search-message").textContent = count
    ? `${count} ${what} for ${request.label} in ${Math.round(data.took_ms)} ms${request.note || ""}`
    : nothingFound(request);
}

// One sound at a time: a player that starts pauses the others (the results' own and the excerpts' players,
// which live outside the page), and an answer replaced stops them all.
const Players = (() => {
  const all = new Set();
  const add = (player) => {
    all.add(player);
    player.addEventListener("play", () => { for (const other of all) if (other !== player) other.pause(); });
    return player;
  };
  const stopAll = () => { for (const player of all) player.pause(); all.clear(); };
  return { add, stopAll };
})();

// The answer on the page is the latest search's: each search takes a number, cancels the one before, and an
// answer that comes back for an older number (or after the results were cleared) is dropped.
let latestSearch = 0;
let pendingSearch = null; // the AbortController of the search in flight

// No answer on the page: a failed search, or nothing left to search for (its last refinement removed).
function clearResults(message) {
  latestSearch += 1; // an answer still on its way is for a search no longer asked
  pendingSearch?.abort();
  Players.stopAll();
  $("results").replaceChildren();
  Exports.show({ results: [] }, false);
  $("search-message").textContent = message;
}

const quoted = (text) => `“${text}”`;

async function runSearch(request) {
  const mine = ++latestSearch;
  pendingSearch?.abort();
  const controller = new AbortController();
  pendingSearch = controller;
  $("search-message").textContent = "Searching…";
  try {
    const response = await fetch(request.url, { method: "POST", ...request.init, signal: controller.signal });
    const data = response.ok ? await response.json() : null;
    const failure = response.ok ? "" : await errorText(response);
    if (mine !== latestSearch) return; // a newer search was asked meanwhile
    if (!response.ok) clearResults(`Search failed: ${failure}`);
    else showResults(data, request);
  } catch (e) {
    if (mine === latestSearch) clearResults(`Search failed: ${e.message}`); // an abort is a newer search's
  }
}

// What a search leaves out of the refinements (keyword search, a search by a file) is shown as left out
// (dimmed, `why` as its title), not as if it applied; "" shows them as used.
function showRefinementUsed(why) {
  for (const id of ["refine-chips", "not"]) {
    $(id).classList.toggle("unused", Boolean(why));
    $(id).title = why;
  }
}

function searchText(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  const refined = refineFields(); // refine.js: more or less like some results, a text to avoid
  if (!query && !refined.like) {
    clearResults(""); // nothing to search for: no answer to a search that is no longer asked
    return;
  }
  const options = searchOptions(); // metadata.js: the mode and the filters
  const moments = $("moments").checked; // waveform.js: moments instead of clips
  // keyword and hybrid search match the query's words, and moments are found by the query's vector: without
  // a query, or for moments, only the vector ranking applies; keyword search takes no clips or text to avoid
  if (!query || moments) options.mode = "vector";
  const parts = options.mode === "keyword" ? {} : refined;
  showRefinementUsed(options.mode === "keyword" ? "keyword search leaves these out" : "");
  const body = JSON.stringify({ ...(query ? { query } : {}), ...parts, k: Number($("k").value), ...options,
                                moments });
  const label = [...(query ? [quoted(query)] : []), ...describeRefinement(parts)].join(", "); // refine.js
  const filtered = Object.keys(options).some((key) => key !== "mode");
  runSearch({ url: "/search", label, moments, filtered,
              init: { body, headers: { "Content-Type": "application/json", ...authHeaders() } } });
}

function searchExample() {
  const file = $("example-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("k", $("k").value);
  const query = $("query").value.trim(); // "like this file, but with rain"
  if (query) form.append("query", query);
  const moments = $("moments").checked;
  form.append("moments", moments);
  const label = [`like ${quoted(file.name)}`, ...(query ? [quoted(query)] : [])].join(", ");
  // a search by a file takes no filters and no refinements (POST /search/audio): said, and the refinements
  // dimmed, rather than shown as if applied
  const filtered = Object.keys(searchOptions()).some((key) => key !== "mode"); // metadata.js
  const refined = Object.keys(refineFields()).length > 0; // refine.js
  const left = [...(filtered ? ["the filters"] : []), ...(refined ? ["the refinements"] : [])].join(" and ");
  const note = left ? ` (a search by a file leaves ${left} out)` : "";
  showRefinementUsed(refined ? "a search by a file leaves these out" : "");
  $("example-file").value = ""; // the same file chosen again searches again
  runSearch({ url: "/search/audio", label, moments, note, init: { body: form, headers: authHeaders() } });
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  const name = $("upload-name").value.trim();
  if (name) form.append("name", name);
  appendUploadMetadata(form); // metadata.js
  const message = $("upload-message");
  message.textContent = `Uploading ${file.name}…`;
  const button = event.submitter || $("upload-form").querySelector("button[type=submit]");
  if (button) button.disabled = true; // a second click sends the file again
  try {
    const response = await fetch("/audio", { method: "POST", body: form, headers: authHeaders() });
    if (!response.ok) {
      message.textContent = `Upload failed: ${await errorText(response)}`;
      return;
    }
    const body = await response.json();
    $("upload-form").reset();
    if (response.status === 202) {
      message.textContent = `“${body.name}” is queued for tagging (job ${body.id}).`;
      followJob(body);
    } else {
      added(body, response.status === 201);
    }
  } catch (e) {
    message.textContent = `Upload failed: ${e.message}`;
  } finally {
    if (button) button.disabled = false;
  }
}

function added(clip, isNew) {
  const tags = clip.tags.slice(0, 3).map((t) => t.label).join(" · ");
  $("upload-message").textContent = isNew
    ? `Added “${clip.name}” (#${clip.id}), tagged ${tags}.`
    : `Already in the collection as “${clip.name}” (#${clip.id}).`;
  refreshStatus();
}

function jobText(job) {
  if (job.status === "queued") return "queued";
  if (job.status === "running") {
    const p = job.progress;
    return p.windows_total ? `tagging: ${p.windows_done} of ${p.windows_total} windows` : "tagging";
  }
  if (job.status === "done") return job.clip ? `done: clip #${job.clip.id}` : "done (its clip removed since)";
  return `failed: ${job.error}`;
}

// Each upload the service acknowledged (202) is listed with its job's state until it is done or failed.
// A job listed again when the page opens (`earlier`) changes the list only, not the upload's message.
async function followJob(job, earlier = false) {
  if (document.querySelector(`#uploads li[data-job="${job.id}"]`)) return; // listed already
  const item = document.createElement("li");
  item.dataset.job = job.id;
  const name = document.createElement("span");
  name.className = "job-name";
  name.textContent = job.name;
  const state = document.createElement("span");
  state.className = "job-state";
  item.append(name, " — ", state);
  $("uploads").prepend(item);
  let unreachable = ""; // why the last poll failed, shown until one succeeds
  for (;;) {
    state.textContent = unreachable || jobText(job);
    item.dataset.status = job.status;
    if (job.status === "done") return earlier || !job.clip ? undefined : added(job.clip, true);
    if (job.status === "failed") {
      if (!earlier) $("upload-message").textContent = `Upload of “${job.name}” failed: ${job.error}`;
      return;
    }
    earlier = false; // still being tagged: its end is news
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    try {
      const response = await fetch(`/jobs/${job.id}`, { headers: authHeaders() });
      if (response.ok) job = await response.json();
      unreachable = response.ok ? "" : `${jobText(job)} (the service answered ${response.status}; retrying)`;
    } catch (e) {
      unreachable = `${jobText(job)} (cannot reach the service: ${e.message}; retrying)`;
    }
  }
}

// The service's latest uploads (GET /jobs is oldest first: its last page), the newest on top, those still
// queued or being tagged followed: the list outlives a reload of the page.
async function listRecentJobs() {
  state.jobsListed = true;
  try {
    const jobs = async (query) => {
      const response = await fetch(`/jobs?${query}`, { headers: authHeaders() });
      return response.ok ? response.json() : null;
    };
    const count = await jobs("limit=1");
    if (!count || !count.total) return;
    const recent = await jobs(`offset=${Math.max(0, count.total - RECENT_JOBS)}&limit=${RECENT_JOBS}`);
    for (const job of recent ? recent.items : []) followJob(job, true);
  } catch (_) { /* the status line says when the service cannot be reached */ }
}

function showKeyState() {
  const hasKey = Boolean(apiKey());
  const canWrite = hasKey && state.writesEnabled; // a server without a key of its own takes no writes
  document.body.classList.toggle("has-key", canWrite); // shows the metadata editors
  $("upload-form").hidden = !canWrite;
  $("forget-key").hidden = !hasKey;
  if (canWrite && state.clips !== null && !state.jobsListed) listRecentJobs(); // once the server is known
  $("api-key").placeholder = hasKey ? "key set for this tab"
    : state.protectReads ? "needed to search this server" : "needed to add or remove clips";
  if (!state.writesEnabled) {
    $("upload-message").textContent = "Uploads are disabled on this server (it has no RETRIEVAL_API_KEY).";
  }
}

// A key typed in is asked about first (GET /health/access): a wrong one is said so and not kept.
async function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  if (/[^\x20-\x7e]/.test(key)) { // a header carries printable ASCII: such a key could never be sent
    $("key-message").textContent = "An API key is printable ASCII (letters, digits, signs): it was not kept.";
    $("api-key").select();
    return;
  }
  let verdict = null;
  try {
    const response = await fetch("/health/access", { headers: { "X-API-Key": key } });
    if (response.ok) verdict = await response.json();
  } catch (_) { /* the service cannot be reached: the key is kept, and a write will tell */ }
  if (verdict && (verdict.key === "wrong" || verdict.key === "unconfigured")) {
    $("key-message").textContent = verdict.key === "wrong"
      ? "That is not this server's API key: it was not kept."
      : "This server has no API key, so it takes no uploads or edits: the key was not kept.";
    $("api-key").select();
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  $("key-message").textContent = verdict && verdict.key === "valid"
    ? "Key accepted for this tab." : "";
  showKeyState();
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORE);
  $("key-message").textContent = "";
  showKeyState();
}

async function refreshStatus() {
  try {
    const response = await fetch("/health/ready");
    if (!response.ok) {
      $("status").textContent = "The service is still loading…";
      return;
    }
    const ready = await response.json();
    state.writesEnabled = ready.access.writes_enabled;
    state.protectReads = ready.access.protect_reads;
    state.clips = ready.clips;
    const model = ready.model.kind === "zero-shot" ? "zero-shot model (tag names)" : "trained model";
    $("status").textContent = `${ready.clips} ${ready.clips === 1 ? "clip" : "clips"} · ${model} ${ready.model.id}`;
    showKeyState();
  } catch (e) {
    $("status").textContent = `The service cannot be reached: ${e.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", searchText);
  $("example-file").addEventListener("change", searchExample);
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("upload-form").addEventListener("submit", upload);
  showKeyState();
  refreshStatus();
});
