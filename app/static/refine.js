// Refining a search: "more like this" and "less like this" on each result, and a text to avoid. They are
// the composite parts of the next POST /search (`like`, `unlike`, `not`), shown as removable chips; the
// service leaves the judged clips out of the results. Uses `$` and `el` from app.js.
"use strict";

const MAX_JUDGED = 20; // clip ids per list the service accepts (app/schemas/search.py MAX_EXAMPLES)
const judged = { like: new Map(), unlike: new Map() }; // id -> name, oldest first

// The composite fields of the next search, only those that are set.
function refineFields() {
  const fields = {};
  if (judged.like.size) fields.like = [...judged.like.keys()];
  if (judged.unlike.size) fields.unlike = [...judged.unlike.keys()];
  const avoid = $("not").value.trim();
  if (avoid) fields.not = avoid;
  return fields;
}

// The composite parts as the heading names them: the judged clips by their names, the text to avoid.
function describeRefinement(fields) {
  const names = (role) => (fields[role] || []).map((id) => `“${judged[role].get(id)}”`).join(" and ");
  return [...(fields.like ? [`more like ${names("like")}`] : []),
          ...(fields.unlike ? [`less like ${names("unlike")}`] : []),
          ...(fields.not ? [`not “${fields.not}”`] : [])];
}

// A clip removed from the collection leaves the chips (a search refined by it would fail), without a search.
function forgetJudged(id) {
  judged.like.delete(id);
  judged.unlike.delete(id);
  renderChips();
}

// No clip judged: a search from the page's URL, which holds none.
function clearJudged() {
  judged.like.clear();
  judged.unlike.clear();
  renderChips();
}

function judge(role, hit) {
  judged[role === "like" ? "unlike" : "like"].delete(hit.id); // a clip is in one list at most
  judged[role].delete(hit.id);
  judged[role].set(hit.id, hit.name);
  if (judged[role].size > MAX_JUDGED) judged[role].delete(judged[role].keys().next().value);
  renderChips();
  searchRefined();
}

function unjudge(role, id) {
  judged[role].delete(id);
  renderChips();
  searchRefined();
}

// The search again, with the keyboard's focus on the search box: the button pressed goes with the old answer.
function searchRefined() {
  $("search-form").requestSubmit();
  $("query").focus();
}

function refineButtons(hit) {
  const box = el("div", "refine-buttons");
  for (const [role, text] of [["like", "More like this"], ["unlike", "Less like this"]]) {
    const button = el("button", `judge ${role}`, text);
    button.type = "button";
    button.addEventListener("click", () => judge(role, hit));
    box.append(button);
  }
  return box;
}

function renderChips() {
  const chips = [];
  for (const [role, prefix] of [["like", "more like"], ["unlike", "less like"]]) {
    for (const [id, name] of judged[role]) {
      const chip = el("li", `chip ${role}`, `${prefix} “${name}”`);
      chip.dataset.id = id;
      const remove = el("button", "remove", "×");
      remove.type = "button";
      remove.title = remove.ariaLabel = `stop searching ${prefix} ${name}`;
      remove.addEventListener("click", () => unjudge(role, id));
      chip.append(remove);
      chips.push(chip);
    }
  }
  $("refine-chips").replaceChildren(...chips);
  $("refine-chips").hidden = chips.length === 0;
}
