"""What the page's search is, kept and said: a search by a file that a change of settings searches again, the
search in the URL and the tab's history, the exports held while a new answer comes, what a search lacks, the
status line when the service goes away, and durations past a minute. Headless Chromium against a real uvicorn
server over the tone stand-in for PaSST (no cost to tag)."""

from urllib.parse import parse_qs, urlsplit

from tests.app.conftest import API_KEY, wav_bytes
from tests.app.test_browser import (  # noqa: F401  (page, tone_server: the fixtures)
    NEEDS_BROWSER,
    page,
    result_names,
    tone_server,
    use_key,
)
from tests.app.test_browser_edges import add, opened
from tests.tone_tagger import sections

pytestmark = NEEDS_BROWSER

MESSAGE = "document.getElementById('search-message').textContent"


# Chromium gives no body of a multipart request with a file in it: the page's fetch is watched instead, each
# FormData it sends kept as its text fields (window.sentForms, in order)
WATCH_FORMS = """(() => {
    window.sentForms = [];
    const send = window.fetch;
    window.fetch = (url, init) => {
        if (init && init.body instanceof FormData) {
            const fields = [...init.body].filter(([, v]) => typeof v === 'string');
            window.sentForms.push(Object.fromEntries(fields));
        }
        return send(url, init);
    };
})()"""


def last_form(tab) -> dict[str, str]:
    """The text fields of the last form the page sent (POST /search/audio)."""
    return tab.evaluate("window.sentForms[window.sentForms.length - 1]")


def says(tab, text: str) -> str:
    """The search message once it holds `text`."""
    tab.wait_for_function(f"{MESSAGE}.includes({text!r})")
    return tab.text_content("#search-message")


def test_a_change_after_a_search_by_file_searches_by_that_file_again(tone_server, page, tmp_path):  # noqa: F811
    """The moments switch, the number of results, a filter and the mode did nothing after a search by a file
    (the heading unchanged, the switch shown on over clips); a search from the box ends the file's search."""
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    add(tone_server, "hum.wav", sections((880.0, 2.0)))
    example = tmp_path / "query.wav"
    example.write_bytes(wav_bytes(sections((440.0, 1.0))))
    page.add_init_script(WATCH_FORMS)
    opened(page, tone_server, 2)
    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.set_input_files("#example-file", str(example))
    says(page, "2 clips for like “query.wav”")

    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.check("#moments")
    assert last_form(page)["moments"] == "true"
    assert says(page, "moments for like “query.wav”")
    assert page.locator(".result .moment").count() >= 1  # moments listed, as the switch says

    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.select_option("#k", "5")
    assert last_form(page)["k"] == "5"

    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.fill("#max-duration", "1")
        page.press("#max-duration", "Tab")
    assert "(a search by a file leaves the filters out: it is by sound)" in says(page, "leaves the filters")
    assert "unused" in page.get_attribute("#filter-chips", "class")  # the chip shown, not as if applied

    page.fill("#query", "with rain")  # typed, not searched yet: the file's search takes it ("but with rain")
    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.check("input[name=mode][value=keyword]")
    assert last_form(page)["query"] == "with rain"
    assert "leaves the filters and keyword mode out" in says(page, "like “query.wav”, “with rain”")

    # Enter in the box is a text search, and ends the search by the file: a change then searches by text
    with page.expect_request(lambda r: r.url.endswith("/search")):
        page.press("#query", "Enter")
    says(page, "for “with rain”")
    assert "unused" not in page.get_attribute("#filter-chips", "class")
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.uncheck("#moments")
    assert asked.value.post_data_json["query"] == "with rain"


def url_params(tab) -> dict[str, list[str]]:
    return parse_qs(urlsplit(tab.url).query)


def test_the_search_is_kept_in_the_url_and_the_tabs_history(tone_server, page):  # noqa: F811
    """A reload, Back and a shared link lost the search; the key never goes into the URL."""
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    add(tone_server, "hum.wav", sections((880.0, 3.0)))
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.goto(tone_server + "/?q=rain")  # a shared link searches what it names
    assert asked.value.post_data_json["query"] == "rain"
    says(page, "2 clips for “rain”")
    assert page.input_value("#query") == "rain"
    use_key(page)

    page.fill("#query", "a dog")
    page.press("#query", "Enter")
    says(page, "for “a dog”")
    assert url_params(page) == {"q": ["a dog"]}
    entries = page.evaluate("history.length")
    page.check("input[name=mode][value=keyword]")  # the same query's settings: its entry, changed
    page.wait_for_function("location.search.includes('mode=keyword')")
    page.fill("#tag-filter", "kick")
    page.press("#tag-filter", "Enter")
    page.fill("#min-duration", "1.5")
    page.press("#min-duration", "Tab")
    page.select_option("#k", "20")
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.check("#moments")
    # moments are found by the query's vector: the heading says so rather than searching by vector silently
    assert asked.value.post_data_json["mode"] == "vector"
    assert "(moments are found by meaning: vector search)" in says(page, "by meaning")
    want = {"q": ["a dog"], "mode": ["keyword"], "moments": ["1"], "k": ["20"], "min": ["1.5"],
            "tag": ["kick"]}
    assert url_params(page) == want
    assert page.evaluate("history.length") == entries
    assert API_KEY not in page.url

    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.go_back()  # the search before: its query, the form as it was
    assert asked.value.post_data_json["query"] == "rain" and url_params(page) == {"q": ["rain"]}
    says(page, "for “rain”")
    assert page.input_value("#query") == "rain" and page.input_value("#k") == "10"
    assert page.is_checked("input[name=mode][value=vector]") and not page.is_checked("#moments")
    assert page.locator("#filter-chips li").count() == 0

    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.go_forward()
    body = asked.value.post_data_json
    assert (body["query"], body["k"], body["moments"], body["tags_all"], body["min_duration"]) == (
        "a dog", 20, True, ["kick"], 1.5)
    assert page.is_checked("input[name=mode][value=keyword]") and page.is_checked("#moments")
    assert page.locator("#filter-chips .chip-text").all_inner_texts() == ["≥ 1.5 s", "kick"]

    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.reload()
    assert asked.value.post_data_json == body
    assert url_params(page) == want

    # a link with values the page leaves out searches without them, and the address says what it searched
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.goto(tone_server + "/?q=rain&k=abc&mode=loud&min=-3&max=2")
    assert (asked.value.post_data_json["k"], asked.value.post_data_json["mode"]) == (10, "vector")
    assert url_params(page) == {"q": ["rain"], "max": ["2"]}
    page.goto(tone_server + "/?not=thunder")  # a "but not" alone: said what is missing, as from the form
    says(page, "needs something to search for")


def test_a_search_by_file_is_not_taken_for_the_text_search_before_it(tone_server, page, tmp_path):  # noqa: F811
    """The address kept the text search's query: a reload after a search by a file ran that text search."""
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    example = tmp_path / "query.wav"
    example.write_bytes(wav_bytes(sections((440.0, 1.0))))
    with page.expect_request(lambda r: r.url.endswith("/search")):
        page.goto(tone_server + "/?q=rain")
    says(page, "1 clip for “rain”")
    with page.expect_request(lambda r: r.url.endswith("/search/audio")):
        page.set_input_files("#example-file", str(example))
    says(page, "1 clip for like “query.wav”")
    assert urlsplit(page.url).query == ""
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.go_back()  # the text search before it
    assert asked.value.post_data_json["query"] == "rain" and url_params(page) == {"q": ["rain"]}
    says(page, "1 clip for “rain”")


def test_the_exports_wait_for_the_new_answer(tone_server, page):  # noqa: F811
    """Export during "Searching…" saved the earlier query's rows as if they were the new one's."""
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    opened(page, tone_server, 1)
    page.fill("#query", "a dog")
    page.press("#query", "Enter")
    says(page, "1 clip for “a dog”")
    assert page.locator("#exports").is_visible()
    exports: list[str] = []
    page.on("request", lambda r: exports.append(r.url) if "/exports/" in r.url else None)
    held = []
    page.route("**/search", lambda route: held.append(route))
    page.fill("#query", "a bird")
    page.press("#query", "Enter")
    page.wait_for_function(f"{MESSAGE} === 'Searching…'")
    csv = page.locator("#exports button[data-format=csv]")
    assert csv.is_disabled()
    csv.evaluate("b => b.click()")  # a click that gets through anyway exports nothing
    page.wait_for_timeout(500)
    assert exports == []
    assert page.get_attribute("#results", "aria-busy") == "true"  # the old answer, shown as not the search's
    held[0].continue_()
    says(page, "1 clip for “a bird”")
    assert csv.is_enabled() and page.get_attribute("#results", "aria-busy") is None
    with page.expect_download():
        csv.click()
    assert len(exports) == 1


def test_a_search_with_only_a_text_to_avoid_says_what_is_missing(tone_server, page):  # noqa: F811
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    opened(page, tone_server, 1)
    page.fill("#query", "a dog")
    page.press("#query", "Enter")
    says(page, "1 clip for")
    page.fill("#query", "")
    page.fill("#not", "thunder")
    page.press("#not", "Enter")
    assert says(page, "Type what") == (
        "Type what the sound should be like (a “but not” needs something to search for).")
    assert page.locator(".result").count() == 0


def test_the_status_line_follows_the_service_away_and_back(tone_server, page):  # noqa: F811
    """It said "11 clips · ..." while every search failed to reach the service."""
    add(tone_server, "bark.wav", sections((440.0, 2.0)))
    opened(page, tone_server, 1)
    for path in ("**/search", "**/health/ready"):
        page.route(path, lambda route: route.abort("connectionrefused"))
    page.fill("#query", "a dog")
    page.press("#query", "Enter")
    assert says(page, "Search failed").startswith("Search failed: the service cannot be reached")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('The service cannot be"
                           " reached')")
    page.unroute("**/search")
    page.unroute("**/health/ready")
    page.press("#query", "Enter")
    says(page, "1 clip for “a dog”")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('1 clip ·')")


def test_durations_past_a_minute_round_before_they_split(tone_server, page):  # noqa: F811
    add(tone_server, "long.wav", sections((440.0, 119.96)))
    opened(page, tone_server, 1)
    page.fill("#query", "a dog")
    page.press("#query", "Enter")
    says(page, "1 clip for")
    assert result_names(page) == ["long.wav"]
    assert page.locator(".result .duration").inner_text() == "2:00.0"  # was 1:60.0
    shown = page.evaluate("[59.96, 61.04, 3599.99, 12.34].map(formatSeconds)")
    assert shown == ["1:00.0", "1:01.0", "1:00:00.0", "12.3 s"]
