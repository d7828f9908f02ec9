// The search mode and filter chips, and each clip's own metadata (description, user tags), editable with the
// API key, and a clip's removal. Uses app.js's helpers ($, el, apiKey, authHeaders, errorText, refreshStatus).
"use strict";

const filters = { minDuration: null, maxDuration: null, tags: [], category: null }; // tags: every one
// must be on the clip; category: a UCS CatID read from the clips' file names (their field ucs_catid)
const CATEGORY_FIELD = "ucs_catid";
const CAT_ID = /^[A-Z]{2,}(?:[A-Z][a-z]+)+$/; // a CatID as index/ingest/ucs.py reads one: DOORWood, AMBForst
const TAG_SEPARATORS = /[;,]/;

const splitTags = (text) => text.split(TAG_SEPARATORS).map((t) => t.trim()).filter(Boolean);

// What app.js adds to a POST /search body: the mode and the active filters.
function searchOptions() {
  const options = { mode: document.querySelector("input[name=mode]:checked").value };
  if (filters.minDuration !== null) options.min_duration = filters.minDuration;
  if (filters.maxDuration !== null) options.max_duration = filters.maxDuration;
  if (filters.tags.length) options.tags_all = [...filters.tags];
  if (filters.category) options.fields = { [CATEGORY_FIELD]: filters.category };
  return options;
}

// The description and tags typed into the upload form, added to it; true when there were some.
function appendUploadMetadata(form) {
  const description = $("upload-description").value.trim();
  const tags = $("upload-tags").value.trim();
  if (description) form.append("description", description);
  if (tags) form.append("user_tags", tags);
  return Boolean(description || tags);
}

// The active filters as URL parameters (app.js keeps the search in the page's URL), and back.
function filterParams(params) {
  if (filters.minDuration !== null) params.set("min", filters.minDuration);
  if (filters.maxDuration !== null) params.set("max", filters.maxDuration);
  for (const tag of filters.tags) params.append("tag", tag);
  if (filters.category) params.set("category", filters.category);
}

function filtersFromParams(params) {
  $("min-duration").value = params.get("min") || "";
  $("max-duration").value = params.get("max") || "";
  filters.tags = [...new Set(params.getAll("tag").map(normalTag).filter(Boolean))];
  filters.category = params.get("category") || null;
  readDurationBoxes(null); // marked, not reported: the focus stays where the page puts it
  showFilters();
}

// A changed filter, mode, number of results or moments switch searches again: the search by a file when that
// is the page's search (app.js), else a text search, or one of refinements alone (more like a result).
function searchAgain() {
  if (searchExampleAgain()) return; // app.js
  if ($("query").value.trim() || refineFields().like) $("search-form").requestSubmit(); // refine.js
}

// A filter's chip; removing it puts the focus on the next chip's remove button (or the one before, or the
// tag box when none is left), not on the page.
function chip(text, onRemove) {
  const item = el("li", "filter-chip");
  const remove = el("button", "chip-remove", "×");
  remove.type = "button";
  remove.title = `remove the filter ${text}`;
  remove.setAttribute("aria-label", `remove the filter ${text}`);
  remove.addEventListener("click", () => {
    const at = [...$("filter-chips").querySelectorAll(".chip-remove")].indexOf(remove);
    onRemove();
    const left = $("filter-chips").querySelectorAll(".chip-remove");
    (left[Math.min(at, left.length - 1)] || $("tag-filter")).focus();
  });
  item.append(el("span", "chip-text", text), remove);
  return item;
}

function showFilters() {
  const chips = [];
  if (filters.minDuration !== null) {
    chips.push(chip(`≥ ${filters.minDuration} s`, () => { $("min-duration").value = ""; readDurations(); }));
  }
  if (filters.maxDuration !== null) {
    chips.push(chip(`≤ ${filters.maxDuration} s`, () => { $("max-duration").value = ""; readDurations(); }));
  }
  for (const tag of filters.tags) {
    chips.push(chip(tag, () => {
      filters.tags = filters.tags.filter((t) => t !== tag);
      showFilters();
      searchAgain();
    }));
  }
  if (filters.category) {
    chips.push(chip(`category ${filters.category}`, () => setCategory(null)));
  }
  $("filter-chips").replaceChildren(...chips);
}

// A duration box's seconds, or null when it is empty or not a length (a negative number: the box is marked
// invalid and left out, rather than sent for the service to refuse every search with it). Only `changed`, the
// box whose change this is (or null), says why it is marked, and only while it keeps the focus (Enter):
// reporting a box takes the keyboard's focus to it (the From box's -1 pulled the focus back each time the
// "to" box changed, and a box left by Tab kept it).
function readDurationBoxes(changed) {
  const number = (id) => {
    const box = $(id);
    const value = parseFloat(box.value);
    const ok = box.value.trim() === "" || (Number.isFinite(value) && value >= 0);
    box.setCustomValidity(ok ? "" : "a length in seconds, 0 or more");
    return ok && box.value.trim() !== "" ? value : null;
  };
  filters.minDuration = number("min-duration");
  filters.maxDuration = number("max-duration");
  if (filters.minDuration !== null && filters.maxDuration !== null && filters.minDuration > filters.maxDuration) {
    $("max-duration").setCustomValidity("at least the From length"); // marked, and left out until mended
    filters.maxDuration = null;
  }
  for (const id of ["min-duration", "max-duration"]) { // shown (metadata.css) and said by a screen reader
    if ($(id).validity.customError) $(id).setAttribute("aria-invalid", "true");
    else $(id).removeAttribute("aria-invalid");
  }
  if (changed && !changed.validity.valid) {
    setTimeout(() => { if (document.activeElement === changed) changed.reportValidity(); }); // once it moved
  }
}

function readDurations(event) {
  readDurationBoxes(event?.target || null);
  showFilters();
  searchAgain();
}

function setCategory(category) {
  filters.category = category || null;
  showFilters();
  searchAgain();
}

const categoryFilter = () => filters.category;

// A category filter is exact, capitals included (the service's `fields` filter). The page knows no list of
// UCS CatIDs (the published list is not shipped: index/ingest/ucs.py), only those of the results it shows: a
// category typed in another case than one of those (`doorwood`) is taken as that one (`DOORWood`).
function knownCategory(typed) {
  const shown = [...$("results").querySelectorAll(".user-tag.category")].map((button) => button.textContent);
  return shown.find((catid) => catid.toLowerCase() === typed.toLowerCase()) || typed;
}

// What a "nothing found" adds when the category filtered by is not written as a CatID would be: its case.
function categoryCaseNote(category) {
  return CAT_ID.test(category) ? ""
    : ` (a category is matched as written, capitals included: check the case of “${category}”; a CatID is`
      + " written like DOORWood)";
}

const normalTag = (tag) => tag.trim().toLowerCase().replace(/\s+/g, " ");

function addTagFilter(tag) {
  const normal = normalTag(tag);
  if (normal && !filters.tags.includes(normal)) filters.tags.push(normal);
  showFilters();
  searchAgain();
}

// A result's description, named fields and user tags (a tag adds itself as a filter), and an editor for the
// description and tags.
function renderMetadata(item, hit) {
  item.hit = hit; // the record it shows, which an edit from another row of the clip changes (showEdited)
  const box = el("div", "clip-meta");
  const description = el("p", "description", hit.description);
  description.hidden = !hit.description;
  const named = Object.entries(hit.fields || {});
  const fields = el("p", "fields", named.map(([key, value]) => `${key}: ${value}`).join(" · "));
  fields.hidden = !named.length;
  const tags = el("ul", "user-tags");
  const category = (hit.fields || {})[CATEGORY_FIELD];
  if (category) { // the clip's UCS category: a click filters by it
    const button = el("button", "user-tag category", category);
    button.type = "button";
    button.title = `only clips of the UCS category ${category}`;
    button.addEventListener("click", () => { setCategory(category); $("category-filter").focus(); });
    const li = el("li");
    li.append(button);
    tags.append(li);
  }
  for (const tag of hit.user_tags) {
    const button = el("button", "user-tag", tag);
    button.type = "button";
    button.title = `only clips tagged ${tag}`;
    button.addEventListener("click", () => { addTagFilter(tag); $("tag-filter").focus(); }); // the results go
    const li = el("li");
    li.append(button);
    tags.append(li);
  }
  const edit = el("button", "edit", "Edit");
  edit.type = "button";
  edit.setAttribute("aria-label", `edit the description and tags of ${hit.name}`);
  edit.addEventListener("click", () => {
    savedMessage(item).textContent = ""; // the last save's news
    const form = editor(item, hit);
    box.replaceWith(form);
    form.querySelector("textarea").focus();
  });
  const message = el("p", "remove-message");
  message.setAttribute("role", "status"); // why a removal failed, read out
  box.append(description, fields, tags, edit, removeButton(item, hit, message), message);
  savedMessage(item).before(box);
  return edit;
}

// The result's live region for "Saved.": the editor that saves is removed with its own message, so the news
// goes to one made with the result, which outlives the editor (a live region made with its text is not read).
function savedMessage(item) {
  let said = item.querySelector(":scope > .saved-message");
  if (!said) {
    said = el("p", "saved-message");
    said.setAttribute("role", "status");
    item.append(said);
  }
  return said;
}

// Removing a clip from the collection (DELETE /audio/{id}, with the key; shown only with a usable key, as
// Edit is), once confirmed: the result leaves the answer, the status line's count follows, and the keyboard's
// focus goes to the next result's Remove (or the search box). What went wrong is said in the result.
function removeButton(item, hit, message) {
  const remove = el("button", "remove-clip", "Remove");
  remove.type = "button";
  remove.setAttribute("aria-label", `remove ${hit.name} from the collection`);
  remove.title = "remove this clip from the collection (with the API key)";
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Remove “${hit.name}” from the collection? This cannot be undone.`)) return;
    message.textContent = "Removing…";
    let response;
    try {
      response = await fetch(`/audio/${hit.id}`, { method: "DELETE", headers: authHeaders() });
    } catch (e) {
      message.textContent = `Not removed: ${e.message}`;
      return;
    }
    if (!response.ok && response.status !== 404) { // a 404: gone already, as the user wanted
      message.textContent = `Not removed: ${await errorText(response)}`;
      return;
    }
    removedFromAnswer(item, hit, response.status === 404
      ? `“${hit.name}” was removed already.` : `Removed “${hit.name}” from the collection.`);
  });
  return remove;
}

// The results of a clip on the page: one, or in a moments answer one per moment of it.
const rowsOf = (id) => [...$("results").querySelectorAll(".result")]
  .filter((row) => row.dataset.id === String(id));

// Every player of a result: its <audio>, and its moment's excerpt player (dragout.js), which lives outside
// the page and would play on, out of reach, once the result is gone.
function stopPlayers(row) {
  for (const audio of row.querySelectorAll("audio")) audio.pause();
  for (const button of row.querySelectorAll(".play-moment")) button.player?.pause();
}

// A clip removed leaves the answer whole: every row of it (its other moments too), its players stopped.
function removedFromAnswer(item, hit, said) {
  const rows = [...$("results").querySelectorAll(".result")];
  const at = rows.indexOf(item);
  const other = (row) => row.dataset.id !== String(hit.id);
  const next = rows.slice(at + 1).find(other) || rows.slice(0, at).reverse().find(other); // the focus goes
  for (const row of rowsOf(hit.id)) {
    stopPlayers(row);
    row.remove();
  }
  Exports.drop(hit.id); // exports.js: the answer exported is the one on the page
  forgetJudged(hit.id); // refine.js: no search is refined by a clip that is gone
  $("search-message").textContent = said;
  (next?.querySelector(".remove-clip") || $("query")).focus();
  refreshStatus(); // app.js: the clip count
}

// A clip's metadata saved from one of its rows shows on all of them (a moments answer lists a clip once per
// moment); a row whose editor is open shows it once that closes.
function showEdited(id, clip) {
  for (const row of rowsOf(id)) {
    Object.assign(row.hit, { description: clip.description, user_tags: clip.user_tags, fields: clip.fields });
    const box = row.querySelector(".clip-meta");
    if (box) {
      box.remove();
      renderMetadata(row, row.hit);
    }
  }
}

function editor(item, hit) {
  const form = el("form", "meta-editor");
  const description = el("textarea", "edit-description");
  description.value = hit.description;
  description.maxLength = 2000;
  description.rows = 2;
  description.setAttribute("aria-label", "description");
  const tags = el("input", "edit-tags");
  tags.value = hit.user_tags.join("; ");
  tags.placeholder = "tags, separated by ; or ,";
  tags.setAttribute("aria-label", "tags");
  const save = el("button", "save", "Save");
  save.type = "submit";
  const cancel = el("button", "cancel", "Cancel");
  cancel.type = "button";
  const message = el("p", "edit-message");
  message.setAttribute("role", "status"); // "Saving…", and why it was not saved, are read out
  const done = () => { form.remove(); renderMetadata(item, hit).focus(); };
  cancel.addEventListener("click", done);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "Saving…";
    const body = JSON.stringify({ description: description.value.trim(), user_tags: splitTags(tags.value) });
    try {
      const response = await fetch(`/audio/${hit.id}`, {
        method: "PATCH", body, headers: { "Content-Type": "application/json", ...authHeaders() } });
      if (!response.ok) {
        message.textContent = `Not saved: ${await errorText(response)}`;
        return;
      }
      const clip = await response.json();
      Object.assign(hit, { description: clip.description, user_tags: clip.user_tags, fields: clip.fields });
      showEdited(hit.id, clip); // its other rows
      done();
      savedMessage(item).textContent = "Saved.";
    } catch (e) {
      message.textContent = `Not saved: ${e.message}`;
    }
  });
  form.append(description, tags, save, cancel, message);
  return form;
}

document.addEventListener("DOMContentLoaded", () => {
  $("min-duration").addEventListener("change", readDurations);
  $("max-duration").addEventListener("change", readDurations);
  $("filter-form").addEventListener("submit", (event) => event.preventDefault());
  $("tag-filter").addEventListener("keydown", (event) => { // Enter adds the tags typed as filters
    if (event.key !== "Enter") return;
    event.preventDefault();
    for (const tag of splitTags($("tag-filter").value)) addTagFilter(tag);
    $("tag-filter").value = "";
  });
  $("category-filter").addEventListener("keydown", (event) => { // Enter filters by the category typed
    if (event.key !== "Enter") return;
    event.preventDefault();
    setCategory(knownCategory($("category-filter").value.trim())); // `doorwood` as the DOORWood shown
    $("category-filter").value = "";
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", searchAgain);
  $("moments").addEventListener("change", searchAgain); // clips or moments: the answer follows the switch
  $("k").addEventListener("change", searchAgain);
});
