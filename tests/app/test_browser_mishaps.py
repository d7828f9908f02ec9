"""The page when things are not as they were: a clip whose file went away, a clip listed once per moment and
removed or edited from one of its rows, an excerpt playing while its clip is removed, an upload the
collection holds already, a service still loading or refusing, a query without a word in keyword mode, a
field the service refuses, a UCS category typed in another case, and times past an hour. Headless Chromium
against a real uvicorn server (the tone stand-in for PaSST, or clips written straight into the store);
answers that are costly to bring about for real (a moments answer with two rows of one clip, a service
still loading) are made by intercepting them."""

import json

import httpx
import pytest

from app.main import create_app
from tests.app.conftest import wav_bytes
from tests.app.test_browser import (  # noqa: F401  (page, tone_server: the fixtures)
    NEEDS_BROWSER,
    page,
    result_names,
    serve,
    tone_server,
    use_key,
)
from tests.app.test_browser_edges import add, opened
from tests.app.test_browser_keyboard import active, search
from tests.app.test_browser_metadata import UCS, add_ucs_clips
from tests.tone_tagger import sections

pytestmark = NEEDS_BROWSER

MESSAGE = "document.getElementById('search-message').textContent"
UPLOADED = "document.getElementById('upload-message').textContent"
STATUS = "document.getElementById('status').textContent"
WAIT_MS = 15_000  # a wait that fails, fails in this time rather than Playwright's 30 s


def stored_file(data_dir, data: bytes):
    """The one file under the server's data folder holding `data` (an upload's audio, where it was kept)."""
    found = [p for p in data_dir.rglob("*") if p.is_file() and p.read_bytes() == data]
    assert len(found) == 1, found
    return found[0]


def test_a_clip_whose_file_went_away_says_why_it_cannot_be_played(tone_server, app_settings, page,  # noqa: F811
                                                                   tmp_path):
    """The waveform's click did nothing and "▶ play it" turned to "❚❚ pause" for good, without a word."""
    wave = sections((440.0, 3.0))
    clip = add(tone_server, "moved.wav", wave)
    path = stored_file(app_settings.data_dir, wav_bytes(wave))
    path.rename(tmp_path / "away.wav")  # the library reorganised since it was indexed
    detail = f"the audio of clip {clip['id']} is no longer where it was indexed"
    assert httpx.get(f"{tone_server}/audio/{clip['id']}/file").json() == {"detail": detail}
    opened(page, tone_server, 1)
    search(page, "a dog barks")
    result = page.locator(".result").first
    said = result.locator(".audio-message")
    assert said.get_attribute("role") == "status" and said.is_hidden()  # nothing to say before a play

    result.locator(".waveform canvas").click()
    page.wait_for_function("document.querySelector('.result .audio-message').textContent.length > 0",
                           timeout=WAIT_MS)
    assert said.inner_text() == f"The audio cannot be played: {detail}"

    page.evaluate("document.querySelector('.result .audio-message').textContent = ''")
    button = result.locator(".play-moment")
    button.click()  # the excerpt's own player: the same file, gone
    page.wait_for_function("document.querySelector('.result .audio-message').textContent.length > 0",
                           timeout=WAIT_MS)
    assert said.inner_text() == f"The audio cannot be played: {detail}"
    page.wait_for_function("document.querySelector('.play-moment').textContent === '▶ play it'",
                           timeout=WAIT_MS)

    (tmp_path / "away.wav").rename(path)  # put back: the button plays it this time, and the message goes
    button.click()
    page.wait_for_function("document.querySelector('.play-moment').textContent === '❚❚ pause'",
                           timeout=WAIT_MS)
    page.wait_for_function("document.querySelector('.result .audio-message').textContent === ''",
                           timeout=WAIT_MS)


def two_rows_of_the_first(route) -> None:
    """A moments answer with the first clip listed twice: its first half first, its second half last."""
    response = route.fetch()
    data = response.json()
    first = data["results"][0]
    half = round(first["duration"] / 2, 3)

    def moment(start: float, end: float, score: float) -> dict:
        url = f"/audio/{first['id']}/file?start={start}&end={end}"
        return dict(first, score=score, segment=dict(first["segment"], start=start, end=end, excerpt_url=url,
                                                     excerpt_name=f"part-{start}.wav"))

    data["results"] = [moment(0.0, half, first["score"]), *data["results"][1:],
                       moment(half, first["duration"], first["score"] - 0.01)]
    route.fulfill(response=response, json=data)


def accept_removals(tab) -> None:
    tab.on("dialog", lambda dialog: dialog.accept())


def playing_excerpt(tab, row):
    """Start a result's "▶ play it" (looped, so that it plays until stopped); its player."""
    player = row.locator(".play-moment").evaluate_handle("b => b.player")
    row.locator(".play-moment").click()
    tab.wait_for_function("p => !p.paused && p.currentTime > 0", arg=player, timeout=WAIT_MS)
    player.evaluate("p => { p.loop = true; }")
    return player


def test_a_clip_listed_once_per_moment_is_edited_and_removed_whole(tone_server, page):  # noqa: F811
    """Remove took one row of a moments answer away and left the clip's other moments (live controls that
    then 404, exports that no longer matched the page); Edit changed the tags of one row alone."""
    for i, name in enumerate(("door.wav", "bell.wav")):
        add(tone_server, name, sections((440.0, 2.0 + i)))
    page.route("**/search", two_rows_of_the_first)
    opened(page, tone_server, 2, key=True)
    page.check("#moments")
    search(page, "a dog barks")
    rows = page.locator(".result")
    clip_id = rows.first.get_attribute("data-id")
    twins = page.locator(f".result[data-id='{clip_id}']")
    assert twins.count() == 2 and rows.last.get_attribute("data-id") == clip_id

    rows.first.locator("button.edit").click()
    rows.first.locator(".edit-tags").fill("Impact; metal")
    rows.first.locator(".meta-editor .save").click()
    page.wait_for_function("document.querySelectorAll('.result .user-tag').length >= 4", timeout=WAIT_MS)
    for i in range(2):  # both rows of the clip show the edit
        assert twins.nth(i).locator(".user-tag").all_inner_texts() == ["impact", "metal"]
    assert active(page) == "button.edit"  # the focus where the hand was

    exported: list[list[int]] = []
    page.on("request", lambda r: exported.append([h["id"] for h in json.loads(r.post_data)["results"]])
            if "/exports/" in r.url else None)
    player = playing_excerpt(page, rows.last)  # the clip's other moment, playing
    accept_removals(page)
    rows.first.locator("button.remove-clip").click()
    page.wait_for_function(f"{MESSAGE}.startsWith('Removed')", timeout=WAIT_MS)
    assert twins.count() == 0  # every row of the clip left the page
    assert player.evaluate("p => p.paused")  # and none of its players plays on
    assert active(page) == "button.remove-clip"
    assert page.evaluate("document.activeElement.closest('.result').dataset.id") != clip_id
    with page.expect_download():
        page.click("#exports button[data-format=csv]")
    shown = [int(i) for i in page.locator(".result").evaluate_all("rows => rows.map((r) => r.dataset.id)")]
    assert exported == [shown] and shown  # the export holds what the page shows


def test_removing_a_clip_stops_its_playing_excerpt(tone_server, page):  # noqa: F811
    """The excerpt player lives outside the page: removal paused only the result's <audio>, and the excerpt
    played on with no control left to stop it."""
    add(tone_server, "dog.wav", sections((440.0, 3.0)))
    add(tone_server, "bird.wav", sections((880.0, 3.0)))
    opened(page, tone_server, 2, key=True)
    search(page, "a dog barks")
    first = page.locator(".result").first
    player = playing_excerpt(page, first)
    accept_removals(page)
    first.locator("button.remove-clip").click()
    page.wait_for_function(f"{MESSAGE}.startsWith('Removed')", timeout=WAIT_MS)
    assert player.evaluate("p => p.paused")
    assert page.locator(".result").count() == 1


def test_an_upload_the_collection_holds_keeps_what_was_typed(tone_server, page, tmp_path):  # noqa: F811
    """The form was emptied and the name, description and tags typed were dropped without a word."""
    wave = sections((440.0, 1.0))
    clip = add(tone_server, "riser.wav", wave)
    again = tmp_path / "again.wav"
    again.write_bytes(wav_bytes(wave))
    opened(page, tone_server, 1, key=True)
    page.set_input_files("#upload-file", str(again))
    typed = {"#upload-name": "Riser 01", "#upload-description": "whoosh for the trailer",
             "#upload-tags": "trailer; whoosh"}
    for box, text in typed.items():
        page.fill(box, text)
    page.click("#upload-form button[type=submit]")
    page.wait_for_function(f"{UPLOADED}.startsWith('Already')", timeout=WAIT_MS)
    assert page.text_content("#upload-message") == (
        f"Already in the collection as “riser.wav” (#{clip['id']}): the name, description and "
        "tags typed were not applied (the form keeps them; Edit on that clip's result changes its "
        "description and tags).")
    assert {box: page.input_value(box) for box in typed} == typed  # kept, to be applied with Edit
    assert page.evaluate("document.getElementById('upload-file').files.length") == 1
    stored = httpx.get(f"{tone_server}/audio/{clip['id']}").json()
    assert (stored["name"], stored["description"], stored["user_tags"]) == ("riser.wav", "", [])

    # the same bytes while their job is queued (the page lists it): 202 with that job, nothing applied either
    job = httpx.get(f"{tone_server}/jobs", params={"limit": 1}).json()["items"][0]
    page.wait_for_selector(f"#uploads li[data-job='{job['id']}']")
    page.route("**/audio", lambda route: route.fulfill(status=202, json={**job, "status": "queued"}))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function(f"{UPLOADED}.includes('queued already')", timeout=WAIT_MS)
    assert page.text_content("#upload-message").startswith(
        f"“riser.wav” is queued already (job {job['id']}): the name, description and tags typed were "
        "not applied")
    assert {box: page.input_value(box) for box in typed} == typed


def test_the_status_line_waits_for_a_loading_service_and_says_a_refusal(tone_server, page):  # noqa: F811
    """Any answer but 200 from /health/ready said "still loading" for good: a 503 was never asked again,
    and a 409 (the index re-projected with another model: restart) was taken for loading."""
    add(tone_server, "bark.wav", sections((440.0, 1.0)))
    asked: list[int] = []

    def loading_twice(route) -> None:
        asked.append(1)
        if len(asked) <= 2:
            route.fulfill(status=503, json={"detail": "the models and the index are still loading"})
        else:
            route.continue_()

    page.route("**/health/ready", loading_twice)
    page.goto(tone_server + "/")
    page.wait_for_function(f"{STATUS} === 'The service is still loading…'", timeout=WAIT_MS)
    # asked again until ready, without a reload
    page.wait_for_function(f"{STATUS}.startsWith('1 clip ·')", timeout=WAIT_MS)
    assert len(asked) == 3

    detail = ("the index was re-projected with another model by another process; restart with the "
              "configuration it now uses")
    page.unroute("**/health/ready")
    page.route("**/health/ready", lambda route: route.fulfill(status=409, json={"detail": detail}))
    page.reload()
    page.wait_for_function(f"{STATUS} !== 'Loading…'", timeout=WAIT_MS)
    assert page.text_content("#status") == f"The service cannot search: {detail}"


def test_the_status_line_says_when_uploads_are_not_being_tagged(tone_server, page):  # noqa: F811
    """A worker that ended leaves uploads queued, untagged: the status line says so (the service's
    /health/ready reports it as ingest_worker "stopped")."""
    add(tone_server, "bark.wav", sections((440.0, 1.0)))

    def stopped(route) -> None:
        ready = route.fetch().json()
        route.fulfill(json={**ready, "ingest_worker": "stopped"})

    page.route("**/health/ready", stopped)
    page.goto(tone_server + "/")
    page.wait_for_function(f"{STATUS}.startsWith('1 clip ·')", timeout=WAIT_MS)
    assert "uploads are not being tagged: the worker has stopped" in page.text_content("#status")

    page.unroute("**/health/ready")  # running when the page opened; it stops after
    page.reload()
    page.wait_for_function(f"{STATUS}.startsWith('1 clip ·')", timeout=WAIT_MS)
    assert "not being tagged" not in page.text_content("#status")
    page.route("**/health/ready", stopped)
    page.evaluate("() => { followJob({id: 4242, name: 'late.wav', status: 'queued'}); }")  # acknowledged now
    page.wait_for_function(f"{STATUS}.includes('uploads are not being tagged')", timeout=WAIT_MS)


@pytest.mark.parametrize(("mode", "query"), [("keyword", "!!!"), ("hybrid", "🔔")])
def test_a_query_without_a_word_is_searched_by_meaning(tone_server, page, mode, query):  # noqa: F811
    """Keyword mode sent "!!!" for the service to refuse (422, the answer cleared), though an empty query
    was searched by meaning, as the docs say of a search without words."""
    add(tone_server, "bark.wav", sections((440.0, 1.0)))
    opened(page, tone_server, 1)
    page.check(f"input[name=mode][value={mode}]")
    page.fill("#query", query)
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.press("#query", "Enter")
    assert asked.value.post_data_json["mode"] == "vector"
    page.wait_for_function(f"{MESSAGE}.includes('1 clip for')", timeout=WAIT_MS)
    assert page.text_content("#search-message").endswith(
        "(a search without words is by meaning: vector search)")
    assert page.is_checked(f"input[name=mode][value={mode}]")  # the mode stays chosen for the next query

    page.fill("#query", "дождь 1")  # a word of any script is a word: searched as chosen
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.press("#query", "Enter")
    assert asked.value.post_data_json["mode"] == mode


def test_a_refused_field_is_named(tone_server, page, tmp_path):  # noqa: F811
    """"Upload failed: String should have at most 64 characters" named no field, and a validator's message
    came with pydantic's "Value error, " before it."""
    upload = tmp_path / "new.wav"
    upload.write_bytes(wav_bytes(sections((880.0, 1.0))))
    opened(page, tone_server, 0, key=True)
    page.set_input_files("#upload-file", str(upload))
    page.fill("#upload-tags", "x" * 70)
    page.click("#upload-form button[type=submit]")
    page.wait_for_function(f"{UPLOADED}.startsWith('Upload failed')", timeout=WAIT_MS)
    assert page.text_content("#upload-message") == (
        "Upload failed: tags: String should have at most 64 characters (as stored: composed, trimmed, "
        "a tag's spaces single)")
    assert page.input_value("#upload-tags") == "x" * 70  # the form kept, to be mended

    said = page.evaluate("""errorText(new Response(JSON.stringify({detail: [
        {loc: ['body'], msg: 'Value error, a keyword query needs a word (letters or digits) to match'},
        {loc: ['body', 'tags_all', 0], msg: 'String should have at most 64 characters'},
        {loc: ['body', 'min_duration'], msg: 'Input should be greater than or equal to 0'}]}),
        {status: 422}))""")
    assert said == ("a keyword query needs a word (letters or digits) to match; tag filter: String should "
                    "have at most 64 characters; min duration: Input should be greater than or equal to 0")


@pytest.fixture
def ucs_library(app_settings, retriever):
    """The base URL of a server whose store holds the UCS clips (two DOORWood, one AMBForst)."""
    app = create_app(app_settings, retriever=retriever)
    with serve(app) as url:
        add_ucs_clips(app.state.collection.store)
        yield url


def test_a_category_typed_in_another_case(ucs_library, page):  # noqa: F811
    """`doorwood` for `DOORWood` found nothing, and nothing said why (the fields filter is exact)."""
    opened(page, ucs_library, 3)
    search(page, "a door")
    assert page.locator(".result").count() == 3
    with page.expect_request(lambda r: r.url.endswith("/search")) as asked:
        page.fill("#category-filter", "doorwood")
        page.press("#category-filter", "Enter")
    assert asked.value.post_data_json["fields"] == {"ucs_catid": "DOORWood"}  # as the results show it
    page.wait_for_function("document.querySelectorAll('.result').length === 2", timeout=WAIT_MS)
    assert sorted(result_names(page)) == sorted(n for n, c in UCS if c == "DOORWood")
    assert page.locator("#filter-chips .chip-text").all_inner_texts() == ["category DOORWood"]

    # a category the page has not seen on a result is sent as typed; finding nothing, it says to mind the case
    page.goto(ucs_library + "/?q=a+door&category=amBForst")
    page.wait_for_function(f"{MESSAGE}.startsWith('Nothing found')", timeout=WAIT_MS)
    assert page.text_content("#search-message") == (
        "Nothing found for “a door” with these filters (a category is matched as written, capitals included: "
        "check the case of “amBForst”; a CatID is written like DOORWood).")
    page.goto(ucs_library + "/?q=a+door&category=WATRSurf")  # written as a CatID is: nothing more to say
    page.wait_for_function(f"{MESSAGE}.startsWith('Nothing found')", timeout=WAIT_MS)
    assert page.text_content("#search-message") == "Nothing found for “a door” with these filters."


def test_times_of_an_hour_or_more(tone_server, page):  # noqa: F811
    opened(page, tone_server, 0)
    shown = page.evaluate("[3725, 3599.99, 36000, 59.96, 7.04, 0].map(formatSeconds)")
    assert shown == ["1:02:05.0", "1:00:00.0", "10:00:00.0", "1:00.0", "7.0 s", "0.0 s"]
    spans = page.evaluate("[[2.5, 12.5], [55, 65], [3597.5, 3607.5]].map(([start, end]) => "
                          "Waveform.formatSpan({start, end}))")
    assert spans == ["2.5–12.5 s", "0:55.0–1:05.0", "59:57.5–1:00:07.5"]
