"""Removing a clip from the page, with the key (the key box said it was "needed to add or remove clips", and
the page had no way to remove one): headless Chromium against a real uvicorn server over the tone stand-in
for PaSST (no cost to tag)."""

import httpx

from tests.app.conftest import API_KEY
from tests.app.test_browser import (  # noqa: F401  (page, tone_server: the fixtures)
    NEEDS_BROWSER,
    page,
    result_names,
    tone_server,
    use_key,
)
from tests.app.test_browser_edges import add, opened
from tests.app.test_browser_keyboard import active, search
from tests.tone_tagger import sections

pytestmark = NEEDS_BROWSER


def test_a_clip_is_removed_from_the_page_once_confirmed(tone_server, page):  # noqa: F811
    clips = {name: add(tone_server, name, sections((440.0, 1.0 + i)))
             for i, name in enumerate(("door.wav", "bell.wav", "gong.wav"))}
    opened(page, tone_server, 3)
    search(page, "a dog barks")
    assert page.locator(".result button.remove-clip").first.is_hidden()  # no key, no removal
    use_key(page)
    deletes: list[tuple[str, str | None]] = []
    page.on("request", lambda r: deletes.append((r.url, r.headers.get("x-api-key")))
            if r.method == "DELETE" else None)
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    order = result_names(page)
    second = page.locator(".result").nth(1)
    name = order[1]
    remove = second.locator("button.remove-clip")
    assert remove.get_attribute("aria-label") == f"remove {name} from the collection"
    page.once("dialog", lambda d: answer(d, False))
    remove.click()  # asked, and refused: nothing sent, nothing removed
    assert asked == [f"Remove “{name}” from the collection? This cannot be undone."]
    page.wait_for_timeout(300)
    assert deletes == [] and result_names(page) == order

    page.once("dialog", lambda d: answer(d, True))
    remove.focus()
    page.keyboard.press("Enter")  # by keyboard too
    page.wait_for_function("document.getElementById('search-message').textContent.startsWith('Removed')")
    clip_id = clips[name]["id"]
    assert deletes == [(f"{tone_server}/audio/{clip_id}", API_KEY)]
    assert page.locator("#search-message").inner_text() == f"Removed “{name}” from the collection."
    assert result_names(page) == [n for n in order if n != name]
    assert httpx.get(f"{tone_server}/audio/{clip_id}").status_code == 404
    page.wait_for_function("document.getElementById('status').textContent.startsWith('2 clips')")
    assert active(page) == "button.remove-clip"  # the next result's, where the hand was
    assert page.locator(".result").nth(1).get_attribute("data-id") == str(clips[order[2]]["id"])

    # a removal the service refuses is said in its result, and the result stays
    page.route("**/audio/*", lambda route: route.fulfill(
        status=403, content_type="application/json", body='{"detail": "the API key is not valid"}')
        if route.request.method == "DELETE" else route.continue_())
    page.once("dialog", lambda d: d.accept())
    first = page.locator(".result").first
    first.locator("button.remove-clip").click()
    page.wait_for_function("document.querySelector('.result .remove-message').textContent.length > 0")
    assert first.locator(".remove-message").inner_text() == "Not removed: the API key is not valid"
    assert len(result_names(page)) == 2


def test_more_like_a_clip_removed_elsewhere_says_so(tone_server, page):  # noqa: F811
    """"More like this" on a clip removed since said only "Search failed: no clips with ids 6"."""
    gone = add(tone_server, "gone.wav", sections((440.0, 1.0)))
    add(tone_server, "kept.wav", sections((880.0, 1.0)))
    opened(page, tone_server, 2)
    search(page, "a dog barks")
    removed = httpx.delete(f"{tone_server}/audio/{gone['id']}", headers={"X-API-Key": API_KEY})
    assert removed.status_code == 204
    page.locator(f".result[data-id='{gone['id']}'] button.judge.like").click()
    page.wait_for_function("document.getElementById('search-message').textContent.includes('failed')")
    assert page.locator("#search-message").inner_text() == (
        f"Search failed: no clips with ids {gone['id']} (a clip it is refined by was removed since: take its "
        "chip off with × to search again)")
