// The search page: plain DOM, no build step, everything from this server.
"use strict";

const KEY_STORE = "retrieval.apiKey";
const SHOWN_TAGS = 6; // chips per result; the record keeps more
const JOB_POLL_MS = 1000; // how often an upload's job is asked for while it is queued or tagged
const RECENT_JOBS = 10; // the service's latest uploads listed when the page opens, so a reload keeps them
const READY_POLL_MS = 2000; // how often /health/ready is asked again while the service is still loading
const QUEUED_STATUS_POLLS = 10; // a job queued this many polls asks /health/ready whether uploads are tagged
// from /health/ready (clips: null until known; reachable: null until asked, false while it cannot be reached);
// jobsListed once the recent uploads were asked for
const state = { writesEnabled: true, protectReads: false, clips: null, reachable: null, jobsListed: false };
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

// The fields of a 422 as the page names them (the service's names otherwise, `_` read as a space).
const FIELD_NAMES = { user_tags: "tags", tags_all: "tag filter", ucs_catid: "category",
                      k: "number of results" };
const WHERE_SENT = new Set(["body", "query", "path", "header", "cookie"]); // a 422's `loc` starts with one

// One problem of a 422, named by its field (the last name of its `loc`: `["body", "user_tags", 0]` is the
// tags), without pydantic's "Value error, " before a validator's own message.
function issueText(issue) {
  const names = (issue.loc || []).filter((part, i) => typeof part === "string"
                                                      && !(i === 0 && WHERE_SENT.has(part)));
  const field = names.length ? names[names.length - 1] : "";
  const message = String(issue.msg || "").replace(/^Value error, /, "");
  return field ? `${FIELD_NAMES[field] || field.replaceAll("_", " ")}: ${message}` : message;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map(issueText).join("; ");
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

// A time as a clock, m:ss.s (h:mm:ss.s from an hour): rounded to the tenth first, then split, so 119.96 s is
// 2:00.0, not 1:60.0, and 3725 s is 1:02:05.0, not 62:05.0.
function clockTime(s) {
  const tenths = Math.round(s * 10);
  const h = Math.floor(tenths / 36000);
  const m = Math.floor(tenths / 600) % 60;
  const secs = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${secs}` : `${m}:${secs}`;
}

// A duration or a time: seconds below a minute (7.0 s), a clock from it.
function formatSeconds(s) {
  return Math.round(s * 10) < 600 ? `${(Math.round(s * 10) / 10).toFixed(1)} s` : clockTime(s);
}

// With protected reads an <audio src> cannot send the key, so the file is fetched with it instead.
// The service's audio URLs play as they are: with protected reads they are signed links (app/security.py),
// so the player streams them (Range requests) without the key.
function attachAudio(audio, url) {
  audio.src = url;
}

// Why the audio at `url` cannot be played: the service's own answer to it (a clip whose file moved or went
// since it was indexed answers 404 saying so), asked for its first byte only.
async function audioTrouble(url) {
  try {
    const response = await fetch(url, { headers: { Range: "bytes=0-0", ...authHeaders() } });
    if (!response.ok) return errorText(response);
    response.body?.cancel();
    return "the file is served, but this browser cannot play it";
  } catch (e) {
    return `the service cannot be reached (${e.message})`;
  }
}

// A player (the result's own, or its moment's) that cannot load its audio says so, and why, in the result's
// `message` (a live region), rather than nothing; the message goes once a player of the result plays.
function reportAudioErrors(player, url, message) {
  player.addEventListener("error", async () => {
    const why = await audioTrouble(url);
    message.textContent = `The audio cannot be played: ${why}`;
  });
  player.addEventListener("playing", () => { message.textContent = ""; });
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
  const duration = el("span", "duration", formatSeconds(hit.duration));
  // what the numbers are, said to a screen reader around them (a span's aria-label is not read out)
  const unseen = (text) => el("span", "visually-hidden", text);
  head.append(unseen("score "), score, unseen(` (${SCORE_TITLES[mode]}), lasts `), duration,
              DragOut.wholeLink(hit)); // the whole file by keyboard too
  const bar = el("div", "bar");
  const fill = el("div", "bar-fill");
  fill.style.width = `${Math.max(0, Math.min(1, hit.score / (mode === "vector" ? 1 : top))) * 100}%`;
  bar.append(fill);
  const audio = Players.add(el("audio"));
  audio.controls = true;
  audio.preload = "none";
  audio.setAttribute("aria-label", `play ${hit.name}`); // its controls, named by the clip
  attachAudio(audio, hit.audio_url);
  const trouble = el("p", "audio-message"); // why its audio cannot be played, read out
  trouble.setAttribute("role", "status");
  reportAudioErrors(audio, hit.audio_url, trouble);
  item.append(head, bar, Waveform.render(hit, audio, trouble), audio, trouble, renderTags(hit.tags),
              refineButtons(hit));
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
  const withFilters = request.filtered ? " with these filters" : "";
  const caseNote = request.category ? categoryCaseNote(request.category) : ""; // metadata.js
  return `Nothing found for ${request.label}${withFilters}${request.note || ""}${caseNote}.`;
}

// The answer's heading (headAnswer): what was searched for, as the page names it (file names, each text
// quoted once).
function showResults(data, request) {
  Players.stopAll();
  const list = $("results");
  list.removeAttribute("aria-busy");
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
  $("results").removeAttribute("aria-busy");
  Exports.show({ results: [] }, false);
  $("search-message").textContent = message;
}

const quoted = (text) => `“${text}”`;

// Why a search the service refused failed; a clip it is refined by that was removed since (a 404 naming
// clips) is said so, with the way out.
function searchFailure(response, failure, request) {
  const judgedClips = request.refinedByClips && response.status === 404;
  return `Search failed: ${failure}${judgedClips
    ? " (a clip it is refined by was removed since: take its chip off with × to search again)" : ""}`;
}

async function runSearch(request) {
  const mine = ++latestSearch;
  pendingSearch?.abort();
  const controller = new AbortController();
  pendingSearch = controller;
  $("search-message").textContent = "Searching…";
  $("results").setAttribute("aria-busy", "true"); // the old answer is no longer the search's: dimmed,
  Exports.hold(); // exports.js: and not exported as if it were
  try {
    const response = await fetch(request.url, { method: "POST", ...request.init, signal: controller.signal });
    const data = response.ok ? await response.json() : null;
    const failure = response.ok ? "" : await errorText(response);
    if (mine !== latestSearch) return; // a newer search was asked meanwhile
    if (state.reachable === false) refreshStatus(); // the service answers again: the status line says so
    if (!response.ok) clearResults(searchFailure(response, failure, request));
    else showResults(data, request);
  } catch (e) {
    if (mine !== latestSearch) return; // an abort is a newer search's
    clearResults(`Search failed: the service cannot be reached (${e.message}).`);
    refreshStatus(); // the status line says so too, rather than the clip count it read before
  }
}

// What a search leaves out of the refinements (keyword search, a search by a file) is shown as left out
// (dimmed, `why` added to its title), not as if it applied; "" shows them as used, with their own titles.
function showRefinementUsed(why) {
  for (const id of ["refine-chips", "not"]) {
    const node = $(id);
    if (node.dataset.title === undefined) node.dataset.title = node.title; // its own ("" for the chips)
    node.classList.toggle("unused", Boolean(why));
    node.title = [node.dataset.title, ...(why ? [why] : [])].join(": ");
  }
}

// Nothing to search for: said when what is set cannot be searched alone (a text to avoid, a clip to be less
// like), else nothing (the last refinement removed: no answer to a search that is no longer asked).
function nothingToSearch(refined) {
  const alone = refined.not ? "a “but not”" : refined.unlike ? "a “less like this”" : "";
  clearResults(alone ? `Type what the sound should be like (${alone} needs something to search for).` : "");
}

// A word is a letter or a digit of any script, as the service's keyword search reads them
// (index/store/words.py): a query without one has nothing for keyword search to match.
const hasWord = (text) => /[\p{L}\p{N}]/u.test(text.normalize("NFKC"));

// The search box's search: the query, the refinements, the mode, the filters and the moments switch. It ends
// a search by a file (a change of settings searches by text from then on). `inUrl` is how the search goes
// into the page's URL: "push" (a new entry, unless the same query's), or "none" (the URL already holds it).
function searchText(event, inUrl = "push") {
  event?.preventDefault();
  endExampleSearch();
  const query = $("query").value.trim();
  const refined = refineFields(); // refine.js: more or less like some results, a text to avoid
  if (!query && !refined.like) {
    nothingToSearch(refined);
    return;
  }
  const options = searchOptions(); // metadata.js: the mode and the filters
  const moments = $("moments").checked; // waveform.js: moments instead of clips
  // keyword and hybrid search match the query's words, and moments are found by the query's vector: without
  // a word in the query ("", "!!!", an emoji), or for moments, only the vector ranking applies (said in the
  // heading, not done silently); keyword search takes no clips or text to avoid
  const chosen = options.mode;
  if (!hasWord(query) || moments) options.mode = "vector";
  const unrefined = options.mode === "keyword" && Object.keys(refined).length > 0; // said, not done silently
  const note = chosen !== options.mode
    ? ` (${moments ? "moments are found" : "a search without words is"} by meaning: vector search)`
    : unrefined ? " (keyword search leaves the refinements out: more or less like, but not)" : "";
  const parts = options.mode === "keyword" ? {} : refined;
  showRefinementUsed(options.mode === "keyword" ? "keyword search leaves these out" : "");
  const body = JSON.stringify({ ...(query ? { query } : {}), ...parts, k: Number($("k").value), ...options,
                                moments });
  const label = [...(query ? [quoted(query)] : []), ...describeRefinement(parts)].join(", "); // refine.js
  const filtered = Object.keys(options).some((key) => key !== "mode");
  if (inUrl === "push") keepInUrl(query, chosen, moments);
  const refinedByClips = Boolean(parts.like || parts.unlike);
  const category = categoryFilter(); // metadata.js: a "nothing found" names its case
  runSearch({ url: "/search", label, moments, filtered, note, refinedByClips, category,
              init: { body, headers: { "Content-Type": "application/json", ...authHeaders() } } });
}

// The file of the last search by a file, while that is the page's search: a change of the moments switch,
// the number of results, the mode or a filter searches by it again (metadata.js searchAgain).
let exampleFile = null;

function chooseExample() {
  const file = $("example-file").files[0];
  if (!file) return;
  $("example-file").value = ""; // the same file chosen again searches again
  // an address cannot hold a file: the search by it is an entry of the tab's history without a search in its
  // address (a reload then shows the empty form, not the text search before; Back goes back to that)
  if (window.location.search) window.history.pushState(null, "", window.location.pathname);
  searchExample(file);
}

function searchExample(file) {
  exampleFile = file;
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
  const options = searchOptions(); // metadata.js
  const filtered = Object.keys(options).some((key) => key !== "mode");
  const refined = Object.keys(refineFields()).length > 0; // refine.js
  const left = [...(filtered ? ["the filters"] : []), ...(refined ? ["the refinements"] : []),
                ...(options.mode !== "vector" ? [`${options.mode} mode`] : [])];
  const note = left.length ? ` (a search by a file leaves ${listed(left)} out: it is by sound)` : "";
  showRefinementUsed(refined ? "a search by a file leaves these out" : "");
  $("filter-chips").classList.toggle("unused", filtered); // shown, but not as if applied
  $("filter-chips").title = filtered ? "a search by a file leaves the filters out" : "";
  runSearch({ url: "/search/audio", label, moments, note, init: { body: form, headers: authHeaders() } });
}

// "a", "a and b", "a, b and c"
const listed = (items) => (items.length < 2 ? items.join("")
  : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`);

// A change of the search's settings, while the page's search is by a file: that search again (true), else
// false (metadata.js then searches by text, when there is something to search for).
function searchExampleAgain() {
  if (!exampleFile) return false;
  searchExample(exampleFile);
  return true;
}

// The page's search is no longer the file's: its filters apply again.
function endExampleSearch() {
  exampleFile = null;
  $("filter-chips").classList.remove("unused");
  $("filter-chips").title = "";
}

// An upload on its way: the form sends nothing more until it is answered (a second click, or Enter, would
// send the file again). Its button is marked aria-disabled rather than disabled: a disabled button drops the
// keyboard's focus to the page, and the next Tab went to the footer.
let uploading = false;

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file || uploading) return;
  const form = new FormData();
  form.append("file", file);
  const name = $("upload-name").value.trim();
  if (name) form.append("name", name);
  const typed = appendUploadMetadata(form) || Boolean(name); // metadata.js: a description or tags typed
  const message = $("upload-message");
  message.textContent = `Uploading ${file.name}…`;
  const button = $("upload-form").querySelector("button[type=submit]");
  uploading = true;
  button.setAttribute("aria-disabled", "true");
  try {
    const response = await fetch("/audio", { method: "POST", body: form, headers: authHeaders() });
    if (!response.ok) {
      message.textContent = `Upload failed: ${await errorText(response)}`;
      return;
    }
    const body = await response.json();
    const queuedBefore = response.status === 202 && isListedJob(body.id); // the same bytes, sent before
    if (response.status === 201 || (response.status === 202 && !queuedBefore)) $("upload-form").reset();
    if (queuedBefore) {
      message.textContent = `“${body.name}” is queued already (job ${body.id})${notApplied(typed)}`;
    } else if (response.status === 202) {
      message.textContent = `“${body.name}” is queued for tagging (job ${body.id}).`;
      followJob(body);
    } else {
      added(body, response.status === 201, typed);
    }
  } catch (e) {
    message.textContent = `Upload failed: ${e.message}`;
  } finally {
    uploading = false;
    button.removeAttribute("aria-disabled");
  }
}

// An upload the service did not take as new (its bytes are in the collection, or queued, already): the
// form keeps what was typed, and the message says that none of it was applied, and how to apply it.
function notApplied(typed) {
  return typed ? ": the name, description and tags typed were not applied (the form keeps them; Edit on that"
    + " clip's result changes its description and tags)." : ".";
}

function isListedJob(id) {
  return Boolean(document.querySelector(`#uploads li[data-job="${id}"]`));
}

function added(clip, isNew, typed = false) {
  const tags = clip.tags.slice(0, 3).map((t) => t.label).join(" · ");
  $("upload-message").textContent = isNew
    ? `Added “${clip.name}” (#${clip.id}), tagged ${tags}.`
    : `Already in the collection as “${clip.name}” (#${clip.id})${notApplied(typed)}`;
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
  let polls = 0;
  if (!earlier) refreshStatus(); // a worker that has stopped says so in the status line
  for (;;) {
    state.textContent = unreachable || jobText(job);
    item.dataset.status = job.status;
    if (job.status === "done") return earlier || !job.clip ? undefined : added(job.clip, true);
    if (job.status === "failed") {
      if (!earlier) $("upload-message").textContent = `Upload of “${job.name}” failed: ${job.error}`;
      return;
    }
    earlier = false; // still being tagged: its end is news
    if (job.status === "queued" && ++polls % QUEUED_STATUS_POLLS === 0) refreshStatus(); // long queued: why?
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

// A key typed in is asked about first (GET /health/access): a wrong one is said so and not kept, nor is one
// that could not be checked (a typo would replace a working key, and uploads would fail later); a key kept
// before stays.
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
  let unchecked = "";
  try {
    const response = await fetch("/health/access", { headers: { "X-API-Key": key } });
    if (response.ok) verdict = await response.json();
    else unchecked = `The service could not check the key (it answered ${response.status}): it was not kept.`;
  } catch (_) {
    unchecked = "The service could not be reached to check the key: it was not kept.";
  }
  if (unchecked || verdict.key === "wrong" || verdict.key === "unconfigured") {
    $("key-message").textContent = unchecked || (verdict.key === "wrong"
      ? "That is not this server's API key: it was not kept."
      : "This server has no API key, so it takes no uploads or edits: the key was not kept.");
    $("api-key").select();
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  $("key-message").textContent = verdict.key === "valid" ? "Key accepted for this tab." : "";
  showKeyState();
}

// The key forgotten: said (the upload form, Edit and Remove go with it), and the keyboard's focus goes to the
// key's box (the button pressed hides itself).
function forgetKey() {
  sessionStorage.removeItem(KEY_STORE);
  showKeyState();
  $("key-message").textContent = `Key forgotten: type it in again to add, edit or remove clips${
    state.protectReads ? ", or to search this server" : ""}.`;
  $("api-key").focus();
}

// The status line from /health/ready: a 503 is a service still loading, asked again every READY_POLL_MS
// until it is ready; any other refusal (a 409: the index was re-projected with another model) is said as the
// service says it.
let statusPoll = null; // the timer of the next ask while the service loads

// The status line (a live region) is written only when it says something new: the same text written again
// is read out again.
function setStatus(text) {
  if ($("status").textContent !== text) $("status").textContent = text;
}

async function refreshStatus() {
  clearTimeout(statusPoll);
  try {
    const response = await fetch("/health/ready");
    state.reachable = true;
    if (response.status === 503) {
      setStatus("The service is still loading…");
      clearTimeout(statusPoll); // one timer, however many asks were on their way
      statusPoll = setTimeout(refreshStatus, READY_POLL_MS);
      return;
    }
    if (!response.ok) {
      setStatus(`The service cannot search: ${await errorText(response)}`);
      return;
    }
    const ready = await response.json();
    state.writesEnabled = ready.access.writes_enabled;
    state.protectReads = ready.access.protect_reads;
    state.clips = ready.clips;
    const model = ready.model.kind === "zero-shot" ? "zero-shot model (tag names)" : "trained model";
    const stopped = ready.ingest_worker === "stopped" // uploads wait, untagged, until the service restarts
      ? " · uploads are not being tagged: the worker has stopped (see the service's log; a restart starts it)"
      : "";
    setStatus(`${ready.clips} ${ready.clips === 1 ? "clip" : "clips"} · ${model} ${ready.model.id}${stopped}`);
    showKeyState();
  } catch (e) {
    state.reachable = false; // until a search or a refresh reaches it again
    setStatus(`The service cannot be reached: ${e.message}`);
  }
}

// The page's search in its URL (`?q=rain&not=thunder&mode=keyword&moments=1&k=20&min=1&max=3&tag=kick
// &category=DOORWood`), so that a reload, Back and a shared link search it again. Never the API key; the
// clips judged more or less like (chips of results the reader of a link has not seen) are not kept.
function searchParams(query, mode, moments) {
  const params = new URLSearchParams();
  if (query) params.set("q", query);
  const avoid = $("not").value.trim();
  if (avoid) params.set("not", avoid);
  if (mode !== "vector") params.set("mode", mode);
  if (moments) params.set("moments", "1");
  if ($("k").value !== "10") params.set("k", $("k").value);
  filterParams(params); // metadata.js
  return params;
}

// A new query is a new entry in the tab's history; a change of the same query's settings (a filter, the mode,
// the switch) takes its entry's place, so that Back goes to the search before, not through every click.
function keepInUrl(query, mode, moments) {
  const params = searchParams(query, mode, moments).toString();
  const now = new URLSearchParams(window.location.search);
  if (params === now.toString()) return;
  const url = params ? `?${params}` : window.location.pathname;
  if (now.toString() && (now.get("q") || "") === query) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
}

// The search the URL holds, into the form and searched (the URL already holds it: nothing is pushed); a URL
// without a query empties the form and the answer (Back to the page before the first search).
function searchFromUrl() {
  const params = new URLSearchParams(window.location.search);
  endExampleSearch();
  clearJudged(); // refine.js: the URL holds none
  $("query").value = params.get("q") || "";
  $("not").value = params.get("not") || "";
  const modes = [...document.querySelectorAll("input[name=mode]")];
  (modes.find((radio) => radio.value === params.get("mode")) || modes[0]).checked = true;
  $("moments").checked = params.get("moments") === "1";
  const k = params.get("k");
  $("k").value = [...$("k").options].some((option) => option.value === k) ? k : "10";
  filtersFromParams(params); // metadata.js
  // the address as the page reads it: a value it left out (k=abc, an unknown mode, a bad duration) goes
  const mode = (modes.find((radio) => radio.checked) || modes[0]).value;
  const read = searchParams($("query").value.trim(), mode, $("moments").checked).toString();
  if (read !== params.toString()) {
    window.history.replaceState(null, "", read ? `?${read}` : window.location.pathname);
  }
  if ($("query").value.trim() || $("not").value.trim()) searchText(null, "none"); // a "but not" alone: said
  else clearResults("");
}

// The answer's summary (#search-message, a live region) is the heading of the results while it says
// something, so that a screen reader's heading navigation reaches it; empty, it is no heading (an empty one
// would be listed among the page's headings with nothing to say).
function headAnswer() {
  const message = $("search-message");
  if (message.textContent) {
    message.setAttribute("role", "heading");
    message.setAttribute("aria-level", "2");
  } else {
    message.removeAttribute("role");
    message.removeAttribute("aria-level");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(headAnswer).observe($("search-message"), { childList: true, characterData: true,
                                                                 subtree: true });
  $("search-form").addEventListener("submit", (event) => searchText(event));
  $("example-file").addEventListener("change", chooseExample);
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("upload-form").addEventListener("submit", upload);
  showKeyState();
  refreshStatus();
  window.addEventListener("popstate", searchFromUrl); // Back and Forward: the search of that entry
  if (window.location.search) searchFromUrl(); // a reload, a shared link
});
