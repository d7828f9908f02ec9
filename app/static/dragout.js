// Results and moments leave the page as files: each can be dragged into a DAW or a file manager (Chromium's
// `DownloadURL` drag-out, with the URL as `text/uri-list` and `text/plain` for other targets), and a moment
// is an excerpt of its own (GET /audio/{id}/file?start=S&end=E, a WAV of just that span).
"use strict";

const DragOut = (() => {
  // The excerpt of a hit's segment: its URL and file name, as the service gives them.
  const excerpt = (hit) => ({ url: hit.segment.excerpt_url, type: "audio/wav", filename: hit.segment.excerpt_name });

  // The whole clip as a file, named and typed as the service serves it.
  const whole = (hit) => ({ url: hit.audio_url, type: hit.file_type, filename: hit.file_name });

  // Makes `node` draggable as the file `file` ({url, type, filename}); an inner draggable keeps its own.
  function attach(node, file) {
    node.draggable = true;
    node.addEventListener("dragstart", (event) => {
      event.stopPropagation();
      const url = new URL(file.url, window.location.href).href;
      const data = event.dataTransfer;
      data.effectAllowed = "copy";
      data.setData("DownloadURL", `${file.type}:${file.filename.replaceAll(":", "_")}:${url}`);
      data.setData("text/uri-list", url);
      data.setData("text/plain", url);
    });
  }

  // A moment's own controls: play the excerpt alone, or save or drag it out as a WAV. An excerpt that cannot
  // be played puts the button back to "play it" and says why in `message` (the result's). Uses el(),
  // attachAudio() and reportAudioErrors() from app.js.
  function momentControls(hit, message) {
    const file = excerpt(hit);
    const box = el("span", "moment");
    const play = el("button", "play-moment");
    play.type = "button";
    play.title = "play just this part (an excerpt of the clip)";
    // its name holds the words it shows, and follows them: "play it" or "pause", then whose moment it is
    const show = (playing) => {
      const [sign, words] = playing ? ["❚❚", "pause"] : ["▶", "play it"];
      play.textContent = `${sign} ${words}`;
      play.setAttribute("aria-label", `${words}: the moment of ${hit.name}`);
    };
    show(false);
    const player = Players.add(new Audio()); // out of the page: the result's own player stays its one <audio>
    player.preload = "none";
    play.player = player;
    player.addEventListener("play", () => show(true));
    player.addEventListener("pause", () => show(false));
    player.addEventListener("error", () => show(false)); // it never started
    reportAudioErrors(player, file.url, message);
    play.addEventListener("click", async () => {
      if (!player.src || player.error) await attachAudio(player, file.url); // a failed one tries again
      if (player.paused) player.play().catch(() => { /* no gesture the browser trusts */ });
      else player.pause();
    });
    const save = el("a", "excerpt", "⤓ excerpt");
    save.href = file.url;
    save.download = file.filename;
    save.title = `save ${file.filename}, or drag it into a DAW or a folder`;
    save.setAttribute("aria-label", `save the excerpt ${file.filename}`);
    attach(save, file);
    box.append(play, save);
    return box;
  }

  // The whole clip as a link to save it (what dragging the result's head does), reachable by keyboard.
  function wholeLink(hit) {
    const file = whole(hit);
    const save = el("a", "whole-file", "⤓ file");
    save.href = file.url;
    save.download = file.filename;
    save.title = `save ${file.filename}, or drag it into a DAW or a folder`;
    save.setAttribute("aria-label", `save the whole file ${file.filename}`);
    attach(save, file);
    return save;
  }

  return { excerpt, whole, attach, momentControls, wholeLink };
})();
