// The current answer as files: CSV, JSON lines, an Audacity label track, REAPER's region CSV. The service
// writes them (POST /exports/{format}, index/exports.py: the command line's `--export`, the same text); this
// sends the answer back and saves what comes. Uses `$`, authHeaders() and errorText()
// from app.js.
"use strict";

const Exports = (() => {
  let answer = null; // the last search's JSON answer

  // The file name the service gives the download (its Content-Disposition), else a plain one.
  const savedName = (response, format) =>
    (response.headers.get("Content-Disposition") || "").match(/filename="([^"]*)"/)?.[1] || `results-${format}`;

  async function download(format) {
    if (!answer) return;
    let response;
    try {
      response = await fetch(`/exports/${format}`, {
        method: "POST", body: JSON.stringify(answer),
        headers: { "Content-Type": "application/json", ...authHeaders() },
      });
    } catch (e) {
      $("search-message").textContent = `Export failed: ${e.message}`;
      return;
    }
    if (!response.ok) {
      $("search-message").textContent = `Export failed: ${await errorText(response)}`;
      return;
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = savedName(response, format);
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // Called by app.js with each answer: the buttons show while there are results. The label track and the
  // regions hold the hits' spans alone: without one (keyword hits have none) they would be empty files, so
  // they are disabled, saying why in words beside them (a disabled button takes no focus: its title would
  // reach no keyboard), which the buttons are described by too.
  function show(data, moments) {
    answer = data.results.length ? { results: data.results, moments: Boolean(moments) } : null;
    $("exports").hidden = !answer;
    const spans = Boolean(answer?.results.some((hit) => hit.segment));
    const why = "no result has a span in its clip (keyword hits have none): search by meaning";
    $("exports-why").textContent = spans ? "" : `Audacity labels and REAPER regions: ${why}.`;
    for (const button of document.querySelectorAll("#exports button")) {
      const empty = button.hasAttribute("data-spans") && !spans;
      button.disabled = empty;
      if (!button.dataset.title) button.dataset.title = button.title;
      button.title = empty ? why : button.dataset.title;
      if (empty) button.setAttribute("aria-describedby", "exports-why");
      else button.removeAttribute("aria-describedby");
    }
  }

  // A new search on its way: the answer on the page is no longer the search's, so it is not exported (the
  // buttons wait, disabled, for the new answer).
  function hold() {
    answer = null;
    for (const button of document.querySelectorAll("#exports button")) button.disabled = true;
  }

  // A result removed from the page (metadata.js) leaves the exported answer too.
  function drop(id) {
    if (!answer) return;
    show({ results: answer.results.filter((hit) => hit.id !== id) }, answer.moments);
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("#exports button[data-format]")) {
      button.addEventListener("click", () => download(button.dataset.format));
    }
  });

  return { show, hold, drop };
})();
