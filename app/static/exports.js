// The current answer as files: CSV, JSON lines, an Audacity label track, REAPER's region CSV. The same
// formats as index/exports.py (the command line's `--export`), byte for byte but for JSON's number spelling;
// tests/app/test_browser.py holds the two to each other. Uses `$` from app.js.
"use strict";

const Exports = (() => {
  const COLUMNS = ["rank", "id", "name", "score", "start", "end", "duration"];
  const CSV_LINE = "\r\n";
  const FORMATS = {
    csv: { suffix: ".csv", type: "text/csv", write: toCsv },
    jsonl: { suffix: ".jsonl", type: "application/jsonl", write: toJsonl },
    audacity: { suffix: ".txt", type: "text/plain", write: toAudacity },
    reaper: { suffix: ".csv", type: "text/csv", write: toReaper },
  };
  let answer = null; // the last search's JSON answer

  // toFixed rounds the exact binary value, ties away from zero, as index/exports.py `fixed` does
  const fixed = (x, places) => x.toFixed(places);
  const seconds = (x) => (x === null ? "" : fixed(x, 6));
  const field = (v) => (/[",\r\n]/.test(String(v)) ? `"${String(v).replaceAll('"', '""')}"` : String(v));
  const csvLine = (values) => values.map(field).join(",") + CSV_LINE;
  const label = (row) => `${row.rank} ${row.name}`.replace(/[\t\r\n]/g, " ");

  function rows(results) {
    return results.map((h, i) => ({ rank: i + 1, id: h.id, name: h.name, score: h.score,
                                    start: h.segment ? h.segment.start : null,
                                    end: h.segment ? h.segment.end : null, duration: h.duration }));
  }

  const spans = (rs) => rs.filter((r) => r.start !== null && r.end !== null);

  function toCsv(rs) {
    return csvLine(COLUMNS) + rs.map((r) => csvLine([r.rank, r.id, r.name, fixed(r.score, 6), seconds(r.start),
                                                     seconds(r.end), seconds(r.duration)])).join("");
  }

  function toJsonl(rs) {
    return rs.map((r) => JSON.stringify(r) + "\n").join("");
  }

  function toAudacity(rs) {
    return spans(rs).map((r) => `${seconds(r.start)}\t${seconds(r.end)}\t${label(r)}\n`).join("");
  }

  const millis = (s) => Math.round(Number(fixed(s, 3)) * 1000);
  function reaperTime(ms) {
    const h = Math.floor(ms / 3600000);
    const m = Math.floor((ms % 3600000) / 60000);
    const s = Math.floor((ms % 60000) / 1000);
    const tail = `${String(s).padStart(2, "0")}.${String(ms % 1000).padStart(3, "0")}`;
    return h ? `${h}:${String(m).padStart(2, "0")}:${tail}` : `${m}:${tail}`;
  }

  function toReaper(rs) {
    return csvLine(["#", "Name", "Start", "End", "Length"]) + spans(rs).map((r, i) => {
      const start = millis(r.start), end = millis(r.end);
      return csvLine([`R${i + 1}`, label(r), reaperTime(start), reaperTime(end), reaperTime(end - start)]);
    }).join("");
  }

  // The text of `format` for a search's results.
  const text = (format, results) => FORMATS[format].write(rows(results));

  function download(format) {
    if (!answer) return;
    const { suffix, type } = FORMATS[format];
    const blob = new Blob([text(format, answer.results)], { type });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${answer.moments ? "moments" : "results"}-${format}${suffix}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // Called by app.js with each answer: the buttons show while there are results.
  function show(data, moments) {
    answer = data.results.length ? { results: data.results, moments } : null;
    $("exports").hidden = !answer;
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("#exports button[data-format]")) {
      button.addEventListener("click", () => download(button.dataset.format));
    }
  });

  return { text, show };
})();
