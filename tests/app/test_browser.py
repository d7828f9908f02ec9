"""The web page driven in headless Chromium (Debian's `chromium`) against a real uvicorn server."""

import contextlib
import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from app.compose import build_retriever
from app.main import create_app
from app.settings import Settings
from index.exports import SUFFIXES
from tests.app.conftest import API_KEY, CLIPS, PLANTED, WRITE, composite_ranking, wav_bytes
from tests.audio_fixtures import sine
from tests.tone_tagger import ToneTagger, sections

RATE = 32_000

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# the folder the README's picture of the page (page.png) is written to: `RETRIEVAL_DOCS_IMAGES=docs/images`
# makes it again; unset, it goes to the test's temporary folder like every other screenshot
DOCS_IMAGES = "RETRIEVAL_DOCS_IMAGES"
DOCS_PICTURE = "page.png"



def browser_missing() -> str | None:
    """Why the page cannot be driven here (no Chromium, or no Playwright), or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


BROWSER_MISSING = browser_missing()
# skipped where the browser is missing, except in CI (`CI` set), where the `page` fixture fails them instead
NEEDS_BROWSER = pytest.mark.skipif(BROWSER_MISSING is not None and not os.environ.get("CI"),
                                   reason=str(BROWSER_MISSING))
pytestmark = NEEDS_BROWSER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """A real uvicorn server of `app` on a free loopback port, started; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if srv.started or not thread.is_alive():
                break
            threading.Event().wait(0.1)
        assert srv.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        srv.should_exit = True
        thread.join(30)


def use_key(page, key: str = API_KEY) -> None:
    """Type the key in and wait for the page to have checked and kept it."""
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('accepted')")


@pytest.fixture
def server(app_settings: Settings, retriever):
    with serve(create_app(app_settings, retriever=retriever)) as url:
        yield url


@pytest.fixture
def tone_server(app_settings: Settings, minilm_path, text_encoder):
    """The server over the tone stand-in for PaSST (440 Hz -> "Dog"): long clips cost nothing to tag."""
    cfg = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    retriever = build_retriever(cfg, tagger=ToneTagger(), text=text_encoder)
    with serve(create_app(app_settings, retriever=retriever)) as url:
        yield url


@pytest.fixture
def page():
    if BROWSER_MISSING is not None:
        pytest.fail(f"the browser tests cannot run in CI: {BROWSER_MISSING}", pytrace=False)
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1000, "height": 1100})
        finally:
            browser.close()


def result_names(page) -> list[str]:
    return page.locator(".result .name").all_inner_texts()


def test_search_listen_and_upload_in_the_page(server, page, tmp_path):
    durations = {}
    with httpx.Client(base_url=server) as http:
        for name, data in CLIPS.items():
            r = http.post("/audio", files={"file": (name, data)}, headers=WRITE, params={"wait": 60})
            assert r.status_code == 201
            durations[name] = r.json()["duration"]

    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('3 clips')")
    model_id = httpx.get(server + "/health/ready").json()["model"]["id"]
    assert len(model_id) == 16 and model_id in page.locator("#status").inner_text()  # names the model
    page.fill("#query", "a steady tone")
    page.press("#query", "Enter")
    page.wait_for_function("document.querySelectorAll('.result').length === 3")
    assert sorted(result_names(page)) == sorted(CLIPS)
    scores = [float(s) for s in page.locator(".result .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert page.locator(".result audio").count() == 3
    assert page.locator(".result .tag").count() >= 3
    # the first player can load its clip: the browser reads the WAV header through /audio/{id}/file
    duration = page.evaluate("""() => new Promise((resolve, reject) => {
        const a = document.querySelector('.result audio');
        a.preload = 'metadata';
        a.onloadedmetadata = () => resolve(a.duration);
        a.onerror = () => reject(new Error('audio error ' + (a.error && a.error.code)));
        a.load();
    })""")
    first = page.locator(".result .name").first.inner_text()
    assert duration == pytest.approx(durations[first], abs=0.01)
    shots = Path(os.environ.get("RETRIEVAL_SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "page-results.png"), full_page=True)

    # uploads appear only once a key is entered; the key lives in sessionStorage
    assert page.locator("#upload-form").is_hidden()
    use_key(page)
    assert page.locator("#upload-form").is_visible()
    assert page.evaluate("sessionStorage.getItem('retrieval.apiKey')") == API_KEY
    clip = tmp_path / "whistle.wav"
    clip.write_bytes(wav_bytes(sine(1320.0, seconds=0.8)))
    page.set_input_files("#upload-file", str(clip))
    page.fill("#upload-name", "my whistle.wav")
    page.click("#upload-form button[type=submit]")
    # acknowledged (202): the upload is listed with its job's state until it is done, then it is found
    page.wait_for_selector("#uploads li[data-job]")
    page.wait_for_function("document.getElementById('upload-message').textContent.startsWith('Added')",
                           timeout=120_000)
    job = page.locator("#uploads li").first
    assert job.get_attribute("data-status") == "done"
    assert job.inner_text().startswith("my whistle.wav — done: clip #")
    page.wait_for_function("document.getElementById('status').textContent.includes('4 clips')")

    page.fill("#query", "a high whistle")
    page.press("#query", "Enter")
    page.wait_for_function("document.querySelectorAll('.result').length === 4")
    assert "my whistle.wav" in result_names(page)
    page.screenshot(path=str(shots / "page-after-upload.png"), full_page=True)

    # a reload keeps the list of uploads (the service's latest jobs, up to 10), without announcing them again
    listed = page.locator("#uploads li").first.inner_text()
    page.reload()
    page.wait_for_selector("#uploads li[data-job]")
    items = page.locator("#uploads li").all_inner_texts()  # every upload, the 201s too; the newest first
    assert items[0] == listed and len(items) == len(CLIPS) + 1
    assert [item.split(" — ")[0] for item in items[1:]] == list(reversed(CLIPS))
    assert all(" — done: clip #" in item for item in items)
    assert page.locator("#upload-message").inner_text() == ""


def search_settles(page, token: str, *, without: str = "\0") -> list[str]:
    """The result names once the answer whose heading holds `token` (and not `without`) is shown."""
    page.wait_for_function("([t, w]) => { const m = document.getElementById('search-message').textContent;"
                           " return m.includes(t) && !m.includes(w); }", arg=[token, without])
    return result_names(page)


def heading(page) -> str:
    """The answer's heading without its timing."""
    return page.locator("#search-message").inner_text().rsplit(" in ", 1)[0]


def test_more_like_this_and_an_exclusion_rerank_as_numpy_says(planted, server, page, retriever, tmp_path):
    """The planted clips' vectors are known: each step's order is the composite query's numpy ranking. The
    heading names what was searched for as the page shows it: each text quoted once, clips by file name."""
    page.goto(server + "/")
    page.wait_for_function(f"document.getElementById('status').textContent.includes('{PLANTED} clips')")
    query = "a steady tone"
    page.fill("#query", query)
    page.press("#query", "Enter")
    first = search_settles(page, query)
    assert first == composite_ranking(retriever, planted, {"query": query})[0]
    assert heading(page) == f"{PLANTED} clips for “{query}”"

    liked = first[2]  # "more like this" on the third result: it joins `like` as a chip, and leaves the list
    liked_id = planted[liked][0]
    page.locator(".result", has_text=liked).locator("button.judge.like").focus()
    page.keyboard.press("Enter")  # from the keyboard: its focus lands on the search box, not the page's top
    body = {"query": query, "like": [liked_id]}
    second = search_settles(page, f"more like “{liked}”")
    assert page.evaluate("document.activeElement.id") == "query"
    assert second == composite_ranking(retriever, planted, body)[0] and liked not in second
    assert second != [n for n in first if n != liked]  # the ranking changed, not only the liked clip left
    assert page.locator("#refine-chips .chip.like").inner_text().startswith(f"more like “{liked}”")

    avoid = "birds chirping in a forest"
    page.fill("#not", avoid)
    page.press("#not", "Enter")
    body["not"] = avoid
    third = search_settles(page, f"not “{avoid}”")
    assert third == composite_ranking(retriever, planted, body)[0] and third != second

    unliked = third[0]  # "less like this" on the best one, then the liked chip is removed
    unliked_id = planted[unliked][0]
    page.locator(".result", has_text=unliked).locator("button.judge.unlike").click()
    body["unlike"] = [unliked_id]
    fourth = search_settles(page, f"less like “{unliked}”")
    assert fourth == composite_ranking(retriever, planted, body)[0]
    assert heading(page) == (f"{PLANTED - 2} clips for “{query}”, more like “{liked}”, "
                             f"less like “{unliked}”, not “{avoid}”")
    page.locator("#refine-chips .chip.like button.remove").click()
    del body["like"]
    fifth = search_settles(page, f"“{query}”, less like", without="more like")
    assert fifth == composite_ranking(retriever, planted, body)[0] and liked in fifth
    assert page.locator("#refine-chips .chip").count() == 1
    # quoted once, clips by name: no straight quotes, no ids, no quote inside a quote
    text = heading(page)
    assert text == f"{PLANTED - 1} clips for “{query}”, less like “{unliked}”, not “{avoid}”"
    assert '"' not in text and "#" not in text and "““" not in text
    shots = Path(os.environ.get("RETRIEVAL_SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "page-refined.png"), full_page=True)
    assert "unused" not in page.get_attribute("#refine-chips", "class")
    page.check("input[name=mode][value=keyword]")  # keyword search leaves the refinements out: shown so
    page.wait_for_function("document.getElementById('refine-chips').classList.contains('unused')")
    assert "unused" in page.get_attribute("#not", "class")


# per canvas column, how many pixels have the colour waveform.js draws the segment's bars in (#2f6fdb)
COLUMNS = """(canvas) => {
    const ctx = canvas.getContext('2d'), {width, height} = canvas;
    const data = ctx.getImageData(0, 0, width, height).data, blue = [];
    for (let x = 0; x < width; x++) {
        let n = 0;
        for (let y = 0; y < height; y++) {
            const i = 4 * (y * width + x);
            if (data[i] === 47 && data[i + 1] === 111 && data[i + 2] === 219 && data[i + 3] === 255) n++;
        }
        blue.push(n);
    }
    return blue;
}"""


def upload_sections(server: str, long_name: str) -> None:
    """Two tone clips through POST /audio, indexed: `long_name` (60 s: 880, 440 then 1760 Hz, 20 s each) and
    rain.wav (10 s of 880 Hz)."""
    with httpx.Client(base_url=server) as http:
        for name, wave in ((long_name, sections((880.0, 20.0), (440.0, 20.0), (1760.0, 20.0))),
                           ("rain.wav", sections((880.0, 10.0)))):
            r = http.post("/audio", files={"file": (name, wav_bytes(wave))}, headers=WRITE,
                          params={"wait": 60})
            assert r.status_code == 201, r.text


def test_each_hit_shows_where_it_sounds_like_the_query(tone_server, page, tmp_path):
    upload_sections(tone_server, "long.wav")
    page.goto(tone_server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('2 clips')")
    page.fill("#query", "a dog barking")
    page.press("#query", "Enter")
    page.wait_for_function("document.querySelectorAll('.waveform canvas[data-drawn=peaks]').length === 2")
    assert result_names(page) == ["long.wav", "rain.wav"]
    first = page.locator(".result").first
    canvas = first.locator("canvas")
    start, end = float(canvas.get_attribute("data-start")), float(canvas.get_attribute("data-end"))
    assert 20.0 <= start < end <= 40.0  # the 440 Hz section
    assert first.locator(".segment").inner_text() == f"sounds like it at {start:.1f}–{end:.1f} s"
    # the waveform is drawn, the segment's bars in the accent colour and no others
    blue = canvas.evaluate(COLUMNS)
    width = len(blue)
    lo, hi = round(start / 60 * width), round(end / 60 * width)
    assert all(max(blue[x:x + 4]) > 0 for x in range(lo + 2, hi - 6, 4))  # a bar every 2 pixels
    assert max(blue[:lo - 2]) == 0 and max(blue[hi + 2:]) == 0
    shots = Path(os.environ.get("RETRIEVAL_SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "page-segments.png"), full_page=True)

    # playing starts at the segment
    audio = first.locator("audio")
    audio.evaluate("a => a.play()")
    page.wait_for_function(f"document.querySelector('.result audio').currentTime >= {start}")
    assert audio.evaluate("a => a.currentTime") < start + 5
    audio.evaluate("a => a.pause()")
    # a click on the waveform seeks there: three quarters of 60 s
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    assert audio.evaluate("a => a.currentTime") == pytest.approx(45.0, abs=0.5)
    audio.evaluate("a => a.pause()")
    # and the keyboard: the waveform takes focus, an arrow moves a tenth of the clip, Home to its start
    canvas.focus()
    page.keyboard.press("ArrowLeft")
    assert audio.evaluate("a => a.currentTime") == pytest.approx(39.0, abs=0.6)
    page.keyboard.press("Home")
    assert audio.evaluate("a => a.currentTime") == pytest.approx(0.0, abs=0.1)
    audio.evaluate("a => a.pause()")

    # the moments switch lists moments: the long clip's dog section first
    page.check("#moments")
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('search-message').textContent.includes('moments for')")
    page.wait_for_function("document.querySelectorAll('.waveform canvas[data-drawn=peaks]').length >= 2")
    moment = page.locator(".result canvas").first
    span = (float(moment.get_attribute("data-start")), float(moment.get_attribute("data-end")))
    assert result_names(page)[0] == "long.wav"
    assert span[0] <= 22.5 and span[1] >= 37.5 and span[1] - span[0] <= 30.0  # covers the section
    page.screenshot(path=str(shots / "page-moments.png"), full_page=True)


def sounding(freq: float, seconds: float, *, envelope: str, seed: int = 0) -> np.ndarray:
    """A tone of `freq` shaped like a sound of its kind (barks, a rain's wash, music's beats), so the page's
    waveforms look like real recordings. The envelopes vary slower than 10 Hz: the tone's energy stays within
    the tone tagger's band, so the tags are those of the pure tone."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    if envelope == "barks":  # bursts about twice a second, of uneven strength
        strength = np.interp(t, np.arange(0, seconds + 1, 0.5), rng.uniform(0.35, 1.0, int(2 * seconds) + 2))
        env = 0.05 + strength * np.sin(np.pi * 1.9 * t) ** 8
    elif envelope == "wash":  # slow, uneven swells
        knots = np.arange(0, seconds + 2, 1.5)
        env = 0.25 + 0.45 * np.interp(t, knots, rng.uniform(0.0, 1.0, len(knots)))
    else:  # beats on a slow phrase
        env = (0.3 + 0.7 * np.sin(np.pi * 2.0 * t) ** 4) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 8.0) ** 2)
    return (0.9 * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)


DOG, RAIN, MUSIC = 440.0, 880.0, 1760.0  # tests/tone_tagger.py TONES: "Dog", "Rain", "Music"
# realistic names over the tone stand-in's three sounds, a dog in some, in different places
LIBRARY = {
    "backyard_dog_barking.wav": [(DOG, 14.0, "barks")],
    "park_walk_rain_then_dog.wav": [(RAIN, 12.0, "wash"), (DOG, 12.0, "barks"), (RAIN, 8.0, "wash")],
    "street_musician_and_dog.wav": [(MUSIC, 6.0, "beats"), (DOG, 14.0, "barks"), (MUSIC, 8.0, "beats")],
    "rain_on_the_window.wav": [(RAIN, 30.0, "wash")],
    "cafe_radio.wav": [(MUSIC, 24.0, "beats")],
}


def test_the_docs_picture_of_a_search(tone_server, page, tmp_path):
    """The README's picture of the page: a search over clips where a dog barks somewhere, each hit's waveform
    with the part that sounds like the query highlighted. Written to $RETRIEVAL_DOCS_IMAGES/page.png."""
    with httpx.Client(base_url=tone_server) as http:
        for i, (name, parts) in enumerate(LIBRARY.items()):
            wave = np.concatenate([sounding(f, s, envelope=e, seed=10 * i + j)
                                   for j, (f, s, e) in enumerate(parts)])
            r = http.post("/audio", files={"file": (name, wav_bytes(wave))}, headers=WRITE,
                          params={"wait": 60})
            assert r.status_code == 201, r.text
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(tone_server + "/")
    page.wait_for_function(f"document.getElementById('status').textContent.includes('{len(LIBRARY)} clips')")
    page.fill("#query", "a dog barking")
    page.press("#query", "Enter")
    page.wait_for_function(f"document.querySelectorAll('.waveform canvas[data-drawn=peaks]').length === "
                           f"{len(LIBRARY)}")
    names = result_names(page)
    assert sorted(names) == sorted(LIBRARY)
    assert names[0] == "backyard_dog_barking.wav" and set(names[1:3]) == {"park_walk_rain_then_dog.wav",
                                                                          "street_musician_and_dog.wav"}
    for name, dog_from in (("park_walk_rain_then_dog.wav", 12.0), ("street_musician_and_dog.wav", 6.0)):
        canvas = page.locator(".result", has_text=name).locator("canvas")
        start, end = float(canvas.get_attribute("data-start")), float(canvas.get_attribute("data-end"))
        assert dog_from - 2.5 <= start < end <= dog_from + 14.5  # the highlighted moment is the dog's
    page.mouse.move(0, 0)  # no hover state in the picture
    results = page.locator(".result").nth(2).bounding_box()
    assert results is not None
    folder = Path(os.environ.get(DOCS_IMAGES) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    # from the top of the page to the third hit: the search, its answer, the three clips where a dog barks
    page.screenshot(path=str(folder / DOCS_PICTURE), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": results["y"] + results["height"] + 8})
    assert (folder / DOCS_PICTURE).stat().st_size < 300_000


# a synthetic dragstart with a DataTransfer of its own, dispatched on the node; what the page put in it
DRAG = """(node) => {
    const data = new DataTransfer();
    node.dispatchEvent(new DragEvent('dragstart', {bubbles: true, cancelable: true, dataTransfer: data}));
    return {download: data.getData('DownloadURL'), uris: data.getData('text/uri-list'),
            text: data.getData('text/plain')};
}"""


def python_exports(results: list[dict]) -> dict[str, str]:
    """index/exports.py's writers over the page's JSON answer: what the command line writes for its hits."""
    from index.exports import WRITERS, ExportRow

    rows = [ExportRow(i, h["id"], h["name"], h["score"], *((h["segment"]["start"], h["segment"]["end"])
                      if h["segment"] else (None, None)), h["duration"]) for i, h in enumerate(results, 1)]
    return {fmt: write(rows) for fmt, write in WRITERS.items()}


def test_results_and_moments_leave_the_page_as_files(tone_server, page, tmp_path):
    """A hit drags out as its file, its moment as an excerpt (a WAV of the span alone) that also plays and
    saves; the export buttons download the answer in the command line's formats, the same text."""
    upload_sections(tone_server, "long take.wav")
    page.goto(tone_server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('2 clips')")
    assert page.locator("#exports").is_hidden()  # nothing to export before an answer
    page.check("#moments")
    page.fill("#query", "a dog barking")
    with page.expect_response(lambda r: r.url.endswith("/search")) as answered:
        page.press("#query", "Enter")
    results = answered.value.json()["results"]
    page.wait_for_function("document.querySelectorAll('.result .moment').length >= 1")
    first, hit = page.locator(".result").first, results[0]
    assert hit["name"] == "long take.wav"
    start, end = hit["segment"]["start"], hit["segment"]["end"]

    # the hit's head drags out as the whole clip
    whole = f"{tone_server}/audio/{hit['id']}/file"
    assert first.locator(".result-head").evaluate(DRAG) == {
        "download": f"audio/wav:long take.wav:{whole}", "uris": whole, "text": whole}
    # the moment's excerpt link drags out (and saves) as the excerpt, named as the service names it
    link = first.locator("a.excerpt")
    url = f"{whole}?start={start:g}&end={end:g}"
    filename = f"long take_{start:g}-{end:g}.wav"
    assert link.evaluate(DRAG) == {"download": f"audio/wav:{filename}:{url}", "uris": url, "text": url}
    assert link.get_attribute("download") == filename
    excerpt = httpx.get(url)
    assert excerpt.status_code == 200 and f'filename="{filename}"' in excerpt.headers["content-disposition"]
    # ▶ plays the excerpt alone: its player's source is the excerpt, and it lasts the moment
    play = first.locator("button.play-moment")
    play.click()
    page.wait_for_function("b => b.player.currentTime > 0", arg=play.element_handle())
    assert play.evaluate("b => b.player.src") == url and play.inner_text() == "❚❚ pause"
    assert play.evaluate("b => b.player.duration") == pytest.approx(end - start, abs=1e-3)
    play.click()
    page.wait_for_function("b => b.player.paused", arg=play.element_handle())
    assert page.locator(".result").first.locator("audio").count() == 1  # the clip's own player alone

    # each export button downloads the command line's text for the same hits, as the service writes it
    want = python_exports(results)
    assert "R1,1 long take.wav," in want["reaper"] and want["audacity"].startswith(f"{start:.6f}\t")
    for fmt, text in want.items():
        with page.expect_download() as saved:
            page.click(f"#exports button[data-format={fmt}]")
        assert saved.value.suggested_filename == f"moments-{fmt}{SUFFIXES[fmt]}"
        assert Path(saved.value.path()).read_bytes().decode() == text, fmt


def test_the_page_tells_nothing_found_from_an_empty_collection_and_keeps_no_stale_answer(server, page):
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('0 clips')")
    page.fill("#query", "a steady tone")
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('search-message').textContent.includes('No clips yet')")
    with httpx.Client(base_url=server) as http:
        r = http.post("/audio", files={"file": ("sine.wav", CLIPS["sine.wav"])}, headers=WRITE,
                      params={"wait": 60})
        assert r.status_code == 201
    page.reload()
    page.wait_for_function("document.getElementById('status').textContent.includes('1 clip ·')")
    page.fill("#query", "a steady tone")
    page.press("#query", "Enter")  # (the reload searched the address's query too: its answer may be up first)
    page.wait_for_function("document.getElementById('search-message').textContent.startsWith('1 clip for')")
    assert page.locator("#search-message").inner_text().startswith("1 clip for “a steady tone”")
    page.check("input[name=mode][value=keyword]")  # a changed mode searches again: no name holds the words
    page.wait_for_function("document.querySelectorAll('.result').length === 0")
    assert page.locator("#search-message").inner_text() == "Nothing found for “a steady tone”."
    page.check("input[name=mode][value=vector]")
    page.wait_for_function("document.querySelectorAll('.result').length === 1")
    page.route("**/search", lambda route: route.fulfill(status=500, body='{"detail": "broken"}',
                                                        content_type="application/json"))
    page.fill("#query", "rain")
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('search-message').textContent.includes('Search failed')")
    assert page.locator(".result").count() == 0 and page.locator("#exports").is_hidden()  # no stale answer


def test_a_wrong_key_typed_in_is_said_so_and_not_kept(server, page):
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('clips')")
    page.fill("#api-key", "not-the-key")
    page.press("#api-key", "Enter")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('not this server')")
    assert page.locator("#upload-form").is_hidden() and page.locator("#forget-key").is_hidden()
    assert page.evaluate("Object.keys(sessionStorage).length") == 0
    page.fill("#api-key", "ключ")  # no header can carry it: every request would fail
    page.press("#api-key", "Enter")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('printable ASCII')")
    assert page.evaluate("Object.keys(sessionStorage).length") == 0
    use_key(page)
    assert page.locator("#upload-form").is_visible() and page.input_value("#api-key") == ""


def test_a_server_without_a_key_of_its_own_shows_no_upload_form_whatever_key_is_typed(app_settings, retriever,
                                                                                      page):
    closed = app_settings.model_copy(update={"api_key": None})
    with serve(create_app(closed, retriever=retriever)) as url:
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('status').textContent.includes('clips')")
        page.fill("#api-key", "anything")
        page.press("#api-key", "Enter")
        page.wait_for_function("document.getElementById('key-message').textContent.includes('no API key')")
        assert page.locator("#upload-form").is_hidden()
        assert "Uploads are disabled on this server" in page.locator("#upload-message").inner_text()
        assert page.evaluate("Object.keys(sessionStorage).length") == 0  # not kept: it is no key here


def test_a_key_that_could_not_be_checked_is_not_kept_and_the_working_one_stays(server, page):
    """The service out of reach while a key is typed in: the unchecked key (a typo, maybe) replaced the
    working one, and uploads then failed with "the API key is not valid"."""
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('clips')")
    use_key(page)
    page.route("**/health/access", lambda route: route.abort("connectionrefused"))
    page.fill("#api-key", "test-key-typo")
    page.press("#api-key", "Enter")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('could not be')")
    assert page.locator("#key-message").inner_text() == (
        "The service could not be reached to check the key: it was not kept.")
    assert page.evaluate("sessionStorage.getItem('retrieval.apiKey')") == API_KEY
    assert page.evaluate("[document.activeElement.id, document.activeElement.selectionStart,"
                         " document.activeElement.selectionEnd]") == ["api-key", 0, len("test-key-typo")]
    assert page.locator("#upload-form").is_visible()  # the working key still writes
    page.unroute("**/health/access")
    page.route("**/health/access", lambda route: route.fulfill(status=503, body="{}"))
    page.press("#api-key", "Enter")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('answered 503')")
    assert page.evaluate("sessionStorage.getItem('retrieval.apiKey')") == API_KEY
