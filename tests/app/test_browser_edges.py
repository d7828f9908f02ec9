"""The page where a user's hand goes off the straight path: a whole clip dragged out under the name the
service gives it, an upload whose clip was removed since, a phone's width, a search by file beside
refinements, the same file twice, the moments switch, a duration that is no length. Headless Chromium
against a real uvicorn server over the tone stand-in for PaSST (no cost to tag)."""

import httpx

from tests.app.conftest import WRITE, wav_bytes
from tests.app.test_browser import (  # noqa: F401  (page, tone_server: the fixtures)
    DRAG,
    NEEDS_BROWSER,
    page,
    tone_server,
    use_key,
)
from tests.tone_tagger import sections

pytestmark = NEEDS_BROWSER


def add(server: str, name: str, wave, fmt: str = "WAV") -> dict:
    r = httpx.post(server + "/audio", files={"file": ("upload.bin", wav_bytes(wave, fmt=fmt))},
                   data={"name": name}, headers=WRITE, params={"wait": 60})
    assert r.status_code == 201, r.text
    return r.json()


def opened(tab, server: str, clips: int, *, key: bool = False) -> None:
    tab.goto(server + "/")
    tab.wait_for_function(f"document.getElementById('status').textContent.includes('{clips} clip')")
    if key:
        use_key(tab)


def searches_sent(tab) -> list[str]:
    """The search requests the page sends from now on (their paths), as a list that grows."""
    sent: list[str] = []
    tab.on("request", lambda r: sent.append(r.url.rsplit("/", 1)[-1]) if "/search" in r.url else None)
    return sent


def test_a_whole_clip_drags_out_as_the_service_names_and_types_it(tone_server, page):  # noqa: F811
    add(tone_server, "Beeps at 1 kHz", sections((440.0, 3.0)))
    flac = add(tone_server, "take.wav", sections((440.0, 2.0), (880.0, 2.0)), fmt="FLAC")  # FLAC named .wav
    opened(page, tone_server, 2)
    page.fill("#query", "a dog barking")
    page.press("#query", "Enter")
    page.wait_for_function("document.querySelectorAll('.result').length === 2")
    for i in range(2):
        head = page.locator(".result").nth(i).locator(".result-head")
        name = page.locator(".result .name").nth(i).inner_text()
        clip = flac if name == "take.wav" else None
        url = head.evaluate(DRAG)["uris"]
        served = httpx.head(url).headers
        want = 'inline; filename="take.flac"' if clip else 'inline; filename="Beeps at 1 kHz.wav"'
        assert served["content-disposition"] == want
        kind, filename = ("audio/flac", "take.flac") if clip else ("audio/wav", "Beeps at 1 kHz.wav")
        assert head.evaluate(DRAG)["download"] == f"{kind}:{filename}:{url}"


def test_an_upload_whose_clip_was_removed_is_listed_without_an_error(tone_server, page):  # noqa: F811
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    kept = add(tone_server, "kept.wav", sections((440.0, 1.0)))
    gone = add(tone_server, "gone.wav", sections((880.0, 1.0)))
    assert httpx.delete(f"{tone_server}/audio/{gone['id']}", headers=WRITE).status_code == 204
    opened(page, tone_server, 1, key=True)
    page.wait_for_function("document.querySelectorAll('#uploads li').length === 2")
    assert page.locator("#uploads li").all_inner_texts() == ["gone.wav — done (its clip removed since)",
                                                            f"kept.wav — done: clip #{kept['id']}"]
    assert errors == []


def test_a_phones_width_scrolls_only_downwards(tone_server, page):  # noqa: F811
    add(tone_server, "x" * 180 + ".wav", sections((440.0, 1.0)))
    page.set_viewport_size({"width": 360, "height": 740})
    opened(page, tone_server, 1, key=True)
    page.wait_for_selector("#uploads li[data-job]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    box = page.locator("#upload-form").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    for field in ("#upload-name", "#upload-description", "#upload-tags"):
        assert page.locator(field).bounding_box()["width"] > 200, field  # a box one can type in


def test_search_by_file_refinements_moments_and_durations(tone_server, page, tmp_path):  # noqa: F811
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    add(tone_server, "hum.wav", sections((880.0, 2.0)))
    example = tmp_path / "example.wav"
    example.write_bytes(wav_bytes(sections((440.0, 1.0))))
    opened(page, tone_server, 2)
    sent = searches_sent(page)
    page.fill("#query", "a dog barking")
    page.press("#query", "Enter")
    page.wait_for_function("document.querySelectorAll('.result').length === 2")
    page.locator(".result").first.locator("button.judge.like").click()  # more like this: a chip
    page.wait_for_selector("#refine-chips li")

    # a search by a file leaves the refinements out: said, and the chips dimmed; the same file again searches
    for _ in range(2):
        before = len(sent)
        with page.expect_response(lambda r: r.url.endswith("/search/audio")):
            page.set_input_files("#example-file", str(example))
        assert sent[before:] == ["audio"]
        page.wait_for_function("document.getElementById('search-message').textContent.includes('leaves')")
        assert "leaves the refinements out" in page.locator("#search-message").inner_text()
        assert "unused" in page.locator("#refine-chips").get_attribute("class")

    # the moments switch searches again, as a change of mode does
    page.locator("#refine-chips button.remove").click()
    page.wait_for_function("document.querySelectorAll('#refine-chips li').length === 0")
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.check("#moments")
    assert asked.value.post_data_json["moments"] is True

    # a duration that is no length is marked and left out, not sent for the service to refuse
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.fill("#min-duration", "-5")
        page.press("#min-duration", "Enter")
    assert "min_duration" not in asked.value.post_data_json
    assert page.evaluate("document.getElementById('min-duration').validity.valid") is False
    page.wait_for_function("document.querySelectorAll('.result').length > 0")
