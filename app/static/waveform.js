// Each hit's waveform overview on a <canvas>: the peaks stored when the clip was indexed, the matching
// segment highlighted, the play position drawn. Playing starts at the segment; a click on the waveform seeks.
// Uses authHeaders() and el() from app.js (loaded first).
"use strict";

const Waveform = (() => {
  const WIDTH = 800; // canvas pixels; CSS stretches it to the result's width
  const HEIGHT = 56;
  // the bars at 3.4:1 on the page's background, the segment's 4.7:1: graphics a reader must see need 3:1
  const COLORS = { wave: "#7d879a", segment: "#2f6fdb", band: "rgba(47, 111, 219, 0.16)", head: "#1d2330" };
  // a move of the slider's keys, as a share of the clip (-1 and 1: to its start and end)
  const KEYS = { ArrowLeft: -0.1, ArrowDown: -0.1, ArrowRight: 0.1, ArrowUp: 0.1, PageDown: -0.25, PageUp: 0.25,
                 Home: -1, End: 1 };
  const SPOKEN_EVERY_S = 10; // while it plays, the slider's value (read out by a screen reader) moves this often

  // A span in seconds within a clip's first minute (2.5–12.5 s), as clock times past it (59:57.5–1:00:07.5,
  // clockTime from app.js).
  function formatSpan(segment) {
    if (Math.round(segment.end * 10) < 600) return `${segment.start.toFixed(1)}–${segment.end.toFixed(1)} s`;
    return `${clockTime(segment.start)}–${clockTime(segment.end)}`;
  }

  function draw(canvas, view) {
    const ctx = canvas.getContext("2d");
    const { peaks, duration, segment, position } = view;
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    const x = (t) => (duration > 0 ? (t / duration) * WIDTH : 0);
    if (segment) {
      ctx.fillStyle = COLORS.band;
      ctx.fillRect(x(segment.start), 0, Math.max(1, x(segment.end) - x(segment.start)), HEIGHT);
    }
    const step = WIDTH / peaks.length;
    for (let i = 0; i < peaks.length; i++) {
      const t = ((i + 0.5) / peaks.length) * duration;
      const h = Math.max(1, (peaks[i] / 255) * (HEIGHT - 4));
      const inside = segment && t >= segment.start && t <= segment.end;
      ctx.fillStyle = inside ? COLORS.segment : COLORS.wave;
      ctx.fillRect(i * step, (HEIGHT - h) / 2, Math.max(1, step - 0.5), h);
    }
    if (position > 0) {
      ctx.fillStyle = COLORS.head;
      ctx.fillRect(Math.min(WIDTH - 2, x(position)), 0, 2, HEIGHT);
    }
  }

  async function loadPeaks(id) {
    const response = await fetch(`/audio/${id}/peaks`, { headers: authHeaders() });
    if (!response.ok) return null;
    return (await response.json()).peaks;
  }

  // A player that failed to load (its file moved or gone: the result's message says why) tries again when
  // asked to play, rather than refusing at once without a word.
  function play(audio) {
    if (audio.error) audio.load();
    audio.play().catch(() => { /* no gesture the browser trusts, or no audio: its `error` says why */ });
  }

  // The waveform of `hit`, driving its <audio>; `message` is where the result says why its audio cannot be
  // played (app.js reportAudioErrors).
  function render(hit, audio, message) {
    const wrap = el("div", "waveform");
    const canvas = el("canvas");
    canvas.width = WIDTH;
    canvas.height = HEIGHT;
    // a slider of the playing position: the keyboard seeks too (arrows by a tenth, Page Up and Page Down by a
    // quarter, Home and End to the ends; Space or Enter plays and pauses), and a screen reader reads where
    // the player is: after a seek, a key or a pause, and every SPOKEN_EVERY_S while it plays (each change of
    // a focused slider's value is read out)
    canvas.setAttribute("role", "slider");
    canvas.setAttribute("aria-valuemin", "0");
    canvas.setAttribute("aria-valuemax", String(hit.duration));
    let spoken = 0; // the position the slider says
    const showPosition = (t) => {
      spoken = t;
      const text = `${formatSeconds(t)} of ${formatSeconds(hit.duration)}`;
      if (canvas.getAttribute("aria-valuetext") === text) return; // the same words, not said again
      canvas.setAttribute("aria-valuenow", String(Math.round(t * 10) / 10)); // to the tenth, as it is said
      canvas.setAttribute("aria-valuetext", text);
    };
    showPosition(0);
    canvas.tabIndex = 0;
    canvas.title = "click to play from there (or the arrow keys, Page Up or Down, Home, End; Space plays and"
      + " pauses)";
    const view = { peaks: [], duration: hit.duration, segment: hit.segment, position: 0 };
    if (hit.segment) {
      canvas.dataset.start = hit.segment.start;
      canvas.dataset.end = hit.segment.end;
      canvas.setAttribute("aria-label", `waveform; it sounds like the query at ${formatSpan(hit.segment)}`);
      const label = el("span", "segment", `sounds like it at ${formatSpan(hit.segment)}`);
      label.title = `score of that part: ${hit.segment.score.toFixed(3)}`;
      wrap.append(canvas, label, DragOut.momentControls(hit, message)); // dragout.js: the excerpt
    } else {
      canvas.setAttribute("aria-label", "waveform");
      wrap.append(canvas);
    }
    loadPeaks(hit.id).then((peaks) => {
      view.peaks = peaks || [];
      canvas.dataset.drawn = peaks ? "peaks" : "none";
      draw(canvas, view);
    }).catch(() => { canvas.dataset.drawn = "none"; });

    // the first play starts at the segment, unless the listener picked a place already
    let placed = false;
    audio.addEventListener("play", () => {
      if (!placed && hit.segment && audio.currentTime === 0) audio.currentTime = hit.segment.start;
      placed = true;
    });
    audio.addEventListener("timeupdate", () => {
      view.position = audio.currentTime;
      if (Math.abs(audio.currentTime - spoken) >= SPOKEN_EVERY_S) showPosition(audio.currentTime);
      draw(canvas, view);
    });
    for (const change of ["pause", "seeked", "ended"]) {
      audio.addEventListener(change, () => showPosition(audio.currentTime));
    }
    const playFrom = (fraction) => {
      const t = Math.max(0, Math.min(1, fraction)) * hit.duration;
      placed = true;
      audio.currentTime = t;
      view.position = t;
      showPosition(t);
      draw(canvas, view);
      play(audio);
    };
    canvas.addEventListener("click", (event) => {
      const box = canvas.getBoundingClientRect();
      playFrom((event.clientX - box.left) / box.width);
    });
    canvas.addEventListener("keydown", (event) => {
      if (event.key === " " || event.key === "Enter") { // as a player's own button: play or pause
        event.preventDefault();
        if (audio.paused || audio.error) play(audio);
        else audio.pause();
        return;
      }
      if (!(event.key in KEYS) || !hit.duration) return;
      event.preventDefault();
      const at = KEYS[event.key] === -1 ? 0 : KEYS[event.key] === 1 ? 0.999
        : audio.currentTime / hit.duration + KEYS[event.key];
      playFrom(at);
    });
    return wrap;
  }

  return { render, formatSpan };
})();
