"""The page by keyboard and screen reader, one sound at a time, and only the latest answer: headless Chromium
against a real uvicorn server over the tone stand-in for PaSST (no cost to tag)."""

from tests.app.test_browser import (  # noqa: F401  (page, tone_server: the fixtures)
    NEEDS_BROWSER,
    page,
    tone_server,
)
from tests.app.test_browser_edges import add, opened
from tests.tone_tagger import sections

pytestmark = NEEDS_BROWSER


def active(tab) -> str:
    """The focused element as `tag.class` (or `tag#id`)."""
    return tab.evaluate("(() => { const a = document.activeElement;"
                        " return a.tagName.toLowerCase() + (a.id ? '#' + a.id : '.' + a.className); })()")


def search(tab, query: str) -> None:
    tab.fill("#query", query)
    tab.press("#query", "Enter")
    tab.wait_for_function(f"document.getElementById('search-message').textContent.includes('{query}')")


def test_only_the_latest_search_answers(tone_server, page):  # noqa: F811
    """A slow answer to an earlier search came back after a newer one's and took its place."""
    add(tone_server, "dog.wav", sections((440.0, 2)))
    opened(page, tone_server, 1)
    held = []
    page.route("**/search", lambda route: held.append(route) if not held else route.continue_())
    page.fill("#query", "the first search")
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('search-message').textContent === 'Searching…'")
    search(page, "the second search")
    try:
        held[0].continue_()  # the first answer, late (its request was cancelled by the second)
    except Exception:  # noqa: BLE001  (the request is gone: nothing to continue)
        pass
    page.wait_for_timeout(1000)
    message = page.text_content("#search-message")
    assert "the second search" in message and "first" not in message
    assert page.locator(".result").count() == 1


def test_every_action_of_a_result_by_keyboard(tone_server, page):  # noqa: F811
    """The whole file has a link of its own (the head's drag was its only way out), focus stays where the
    hand is after Edit, Cancel and removing a filter, and controls have names a screen reader can say."""
    clip = add(tone_server, "door.wav", sections((440.0, 2)))
    add(tone_server, "bell.wav", sections((880.0, 2)))
    opened(page, tone_server, 2, key=True)
    search(page, "a dog barks")
    hit = page.evaluate("fetch('/search', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                        " body: JSON.stringify({query: 'a dog barks'})}).then((r) => r.json())")["results"]
    link = page.locator(f".result[data-id='{clip['id']}'] .whole-file")
    want = next(h for h in hit if h["id"] == clip["id"])
    assert link.get_attribute("download") == want["file_name"] == "door.wav"
    assert link.get_attribute("href") == want["audio_url"]
    assert link.get_attribute("aria-label") == "save the whole file door.wav"
    assert page.locator(".result h3.name").all_inner_texts()  # results are headings

    edit = page.locator(f".result[data-id='{clip['id']}'] button.edit")
    edit.focus()
    page.keyboard.press("Enter")
    assert active(page) == "textarea.edit-description"
    assert page.locator(".edit-message").get_attribute("role") == "status"
    page.locator(".meta-editor button.cancel").focus()
    page.keyboard.press("Enter")
    assert active(page) == "button.edit"

    page.fill("#tag-filter", "drums; kick")
    page.press("#tag-filter", "Enter")
    removes = page.locator("#filter-chips .chip-remove")
    assert [removes.nth(i).get_attribute("aria-label") for i in range(2)] == [
        "remove the filter drums", "remove the filter kick"]
    removes.first.focus()
    page.keyboard.press("Enter")
    assert active(page) == "button.chip-remove"  # the next chip's, now the first
    page.keyboard.press("Enter")
    assert active(page) == "input#tag-filter"  # none left

    slider = page.locator(".result .waveform canvas").first
    assert slider.get_attribute("role") == "slider"
    assert slider.get_attribute("aria-valuetext").startswith("0.0 s of ")


def test_one_sound_at_a_time_and_none_after_the_answer_changes(tone_server, page):  # noqa: F811
    add(tone_server, "dog.wav", sections((440.0, 3)))
    add(tone_server, "bird.wav", sections((880.0, 3)))
    opened(page, tone_server, 2)
    search(page, "a dog barks")
    page.locator(".play-moment").first.click()  # an excerpt's own player, outside the page
    page.wait_for_function("document.querySelector('.play-moment').textContent.includes('pause')")
    page.evaluate("document.querySelectorAll('.result audio')[1].play()")
    page.wait_for_function("document.querySelector('.play-moment').textContent.includes('play it')")
    page.wait_for_function("!document.querySelectorAll('.result audio')[1].paused")
    playing = page.evaluate_handle("document.querySelectorAll('.result audio')[1]")
    search(page, "a bird sings")
    assert page.evaluate("(a) => a.paused", playing)  # the old answer's player stopped with it


def test_nothing_scrolls_sideways_at_320_pixels(tone_server, page):  # noqa: F811
    add(tone_server, "a" * 150 + ".wav", sections((440.0, 1)))
    page.set_viewport_size({"width": 320, "height": 800})
    opened(page, tone_server, 1)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 320  # the file chooser made it 339
    search(page, "x" * 120)
    page.fill("#tag-filter", "t" * 64)
    page.press("#tag-filter", "Enter")
    page.wait_for_timeout(300)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 320


def test_each_filter_box_keeps_its_label_and_unit_at_320_pixels(tone_server, page):  # noqa: F811
    """The "s" after the longest duration wrapped onto a line of its own, before the tag box."""
    page.set_viewport_size({"width": 320, "height": 800})
    opened(page, tone_server, 0)
    boxes = {s: page.locator(s).bounding_box() for s in ("label[for=min-duration]", "#min-duration",
                                                          "label[for=max-duration]", "#max-duration",
                                                          "#filter-form .unit")}
    middle = {s: b["y"] + b["height"] / 2 for s, b in boxes.items()}
    for label, box in (("label[for=min-duration]", "#min-duration"),
                       ("label[for=max-duration]", "#max-duration"), ("#filter-form .unit", "#max-duration")):
        assert boxes[box]["y"] <= middle[label] <= boxes[box]["y"] + boxes[box]["height"], label
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 320
