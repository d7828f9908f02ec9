"""The page by keyboard and screen reader, one sound at a time, and only the latest answer: headless Chromium
against a real uvicorn server over the tone stand-in for PaSST (no cost to tag)."""

import re

from tests.app.conftest import wav_bytes
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


def contrast(rgb: list[int], background: str = "#f6f7fa") -> float:
    """WCAG's contrast ratio of a colour ([r, g, b]) on the page's background."""
    def luminance(channels) -> float:
        c = [x / 255 for x in channels]
        c = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    lighter, darker = sorted((luminance(rgb), luminance(bytes.fromhex(background[1:]))), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# the opaque colours a canvas is drawn in, and how many pixels of each
COLOURS = """(canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data, seen = {};
    for (let i = 0; i < data.length; i += 4) {
        const rgb = [data[i], data[i + 1], data[i + 2]].join();
        if (data[i + 3] === 255) seen[rgb] = (seen[rgb] || 0) + 1;
    }
    return seen;
}"""

# how often each attribute of `node` changes from now on: window.changes[name]
COUNT_CHANGES = """(node) => {
    window.changes = {};
    new MutationObserver((records) => {
        for (const r of records) {
            const name = r.attributeName || 'text';
            window.changes[name] = (window.changes[name] || 0) + 1;
        }
    }).observe(node, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


def test_the_focus_stays_in_the_form_through_an_upload_and_forgetting_the_key(tone_server, page,  # noqa: F811
                                                                              tmp_path):
    """Upload, disabled while sending, and Forget key, hidden once pressed, dropped the focus to the page (the
    next Tab went to the footer); forgetting the key said nothing while the upload form went."""
    clip = tmp_path / "new.wav"
    clip.write_bytes(wav_bytes(sections((880.0, 1.0))))
    opened(page, tone_server, 0, key=True)
    page.set_input_files("#upload-file", str(clip))
    held = []
    page.route("**/audio", lambda route: held.append(route))
    button = page.locator("#upload-form button[type=submit]")
    on_button = "document.activeElement === document.querySelector('#upload-form button[type=submit]')"
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('upload-message').textContent.startsWith('Uploading')")
    assert page.evaluate(on_button) and button.get_attribute("aria-disabled") == "true"
    page.keyboard.press("Enter")  # busy: not sent again
    page.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/audio")
    page.wait_for_function("!document.getElementById('upload-message').textContent.startsWith('Uploading')")
    assert page.evaluate(on_button) and button.get_attribute("aria-disabled") is None

    page.locator("#forget-key").focus()
    page.keyboard.press("Enter")
    assert active(page) == "input#api-key"
    assert page.text_content("#key-message").startswith("Key forgotten: ")
    assert page.get_attribute("#key-message", "role") == "status"
    assert page.locator("#upload-form").is_hidden()


def test_a_result_by_keyboard_and_screen_reader(tone_server, page):  # noqa: F811
    """The moment's button was named "play" while it showed "pause"; the result's player had no name; the
    waveform took no Up, Down, Page Up or Page Down (the page scrolled) and said its position four times a
    second while it played; its bars were 2.4:1 on the background; the score's words were an aria-label on
    a span, which screen readers do not read."""
    add(tone_server, "door.wav", sections((440.0, 10.0), (880.0, 20.0)))
    opened(page, tone_server, 1)
    search(page, "a dog barks")
    result = page.locator(".result").first
    assert result.locator("audio").get_attribute("aria-label") == "play door.wav"
    assert result.locator(".score").get_attribute("aria-label") is None
    head = result.locator(".result-head").evaluate("h => h.textContent")
    assert re.search(r"score \d\.\d{3} \(cosine similarity to the query\), lasts 30\.0 s", head), head
    play = result.locator(".play-moment")
    assert play.inner_text() == "▶ play it"
    assert play.get_attribute("aria-label") == "play it: the moment of door.wav"
    play.click()
    page.wait_for_function("document.querySelector('.play-moment').textContent.includes('pause')")
    assert play.get_attribute("aria-label") == "pause: the moment of door.wav"
    play.click()
    page.wait_for_function("document.querySelector('.play-moment').textContent.includes('play it')")
    assert play.get_attribute("aria-label") == "play it: the moment of door.wav"

    canvas = result.locator(".waveform canvas")
    page.wait_for_selector(".waveform canvas[data-drawn=peaks]")
    colours = canvas.evaluate(COLOURS)
    wave = max((c for c in colours if c != "47,111,219"), key=colours.get)  # the bars outside the segment
    assert contrast([int(x) for x in wave.split(",")]) >= 3.0, wave

    audio = result.locator("audio")
    page.evaluate("() => { window.prevented = []; window.addEventListener('keydown',"
                  " (e) => window.prevented.push(e.defaultPrevented)); }")
    canvas.focus()
    for key, at in (("Home", 0.0), ("ArrowUp", 3.0), ("PageUp", 10.5), ("ArrowDown", 7.5), ("PageDown", 0.0)):
        page.keyboard.press(key)
        now = audio.evaluate("a => a.currentTime")
        assert abs(now - at) < 0.4, (key, now)
        assert abs(float(canvas.get_attribute("aria-valuenow")) - at) < 0.4, key  # said at once
    assert page.evaluate("window.prevented") == [True] * 5  # none scrolled the page
    audio.evaluate("a => a.pause()")
    page.wait_for_timeout(300)  # its pause said (an event after the call)

    canvas.evaluate(COUNT_CHANGES)
    page.keyboard.press("Home")  # plays from the start: said once, then not every timeupdate
    page.wait_for_function("document.querySelector('.result audio').currentTime > 3", timeout=10_000)
    assert page.evaluate("window.changes['aria-valuetext'] || 0") <= 1
    page.keyboard.press("Space")  # paused: where it is, said
    page.wait_for_function("([a, c]) => a.paused && a.currentTime > 3"
                           " && Math.abs(c.getAttribute('aria-valuenow') - a.currentTime) <= 0.05",
                           arg=[audio.element_handle(), canvas.element_handle()], timeout=5000)


def test_a_negative_from_keeps_no_focus_from_the_to_box(tone_server, page):  # noqa: F811
    """-1 in From, Tab, then 3 in "to" and Tab: the focus went back to From (both boxes were reported, and
    reporting a box focuses it)."""
    opened(page, tone_server, 0)
    page.locator("#min-duration").focus()
    page.keyboard.type("-1")
    page.keyboard.press("Tab")
    assert page.evaluate("document.getElementById('min-duration').validity.valid") is False  # marked
    assert active(page) == "input#max-duration"
    page.keyboard.type("3")
    page.keyboard.press("Tab")
    assert active(page) == "input#tag-filter"
    assert page.evaluate("document.getElementById('min-duration').validity.valid") is False  # still marked
    assert page.get_attribute("#min-duration", "aria-invalid") == "true"
    assert page.get_attribute("#max-duration", "aria-invalid") is None


def test_the_answer_is_a_heading_and_says_what_it_leaves_out(tone_server, page):  # noqa: F811
    """The answer's summary was no heading; keyword search dropped the refinements without a word, and a
    search by meaning wiped the "but not" box's title; the export buttons said why they were disabled only
    in a title, which no keyboard reaches."""
    add(tone_server, "dog.wav", sections((440.0, 2.0)))
    opened(page, tone_server, 1)
    own = page.get_attribute("#not", "title")
    page.fill("#not", "thunder")
    search(page, "dog")
    answer = page.get_by_role("heading", level=2, name=re.compile(r"^1 clip for “dog”"))
    assert answer.count() == 1 and answer.get_attribute("id") == "search-message"
    assert page.get_attribute("#search-message", "aria-live") == "polite"
    assert page.get_attribute("#not", "title") == own == "what the clips should not sound like"
    assert page.locator("#exports-why").is_hidden()

    with page.expect_response(lambda r: r.url.endswith("/search")):
        page.check("input[name=mode][value=keyword]")
    page.wait_for_function("document.getElementById('search-message').textContent.startsWith('1 clip')")
    assert "(keyword search leaves the refinements out" in page.text_content("#search-message")
    assert page.get_attribute("#not", "title").startswith(own + ": keyword search leaves")
    why = page.locator("#exports-why")
    assert why.is_visible() and "keyword hits have none" in why.inner_text()
    for fmt in ("audacity", "reaper"):
        assert page.get_attribute(f"#exports button[data-format={fmt}]", "aria-describedby") == "exports-why"
    assert page.get_attribute("#exports button[data-format=csv]", "aria-describedby") is None


def test_saved_and_an_unchanged_status_line(tone_server, page):  # noqa: F811
    """Save removed the editor with its message, saying nothing; the status line, a live region, was
    written again with the same text (read out again) at each refresh."""
    add(tone_server, "dog.wav", sections((440.0, 1.0)))
    opened(page, tone_server, 1, key=True)
    search(page, "a dog")
    result = page.locator(".result").first
    said = result.locator(".saved-message")
    assert said.get_attribute("role") == "status" and said.inner_text() == ""  # there before the save
    live = said.element_handle()
    result.locator("button.edit").click()
    page.fill(".meta-editor textarea", "a bark")
    page.locator(".meta-editor button.save").click()
    page.wait_for_function("(p) => p.textContent === 'Saved.'", arg=live, timeout=10_000)
    assert live.evaluate("p => p.isConnected") and active(page) == "button.edit"

    page.locator("#status").evaluate(COUNT_CHANGES)
    page.evaluate("() => refreshStatus()")
    page.evaluate("() => refreshStatus()")
    assert page.evaluate("window.changes") == {}
