"""The page's keyword / hybrid switch, filter chips and metadata editor, in headless Chromium against a real
uvicorn server whose store holds planted clips (tests/app/planted.py; no PaSST)."""

import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.main import create_app
from index.store.metadata import Metadata
from index.store.records import NewClip, Tag
from tests.app.conftest import WRITE
from tests.app.planted import LIBRARY, plant
from tests.app.test_browser import NEEDS_BROWSER, page, result_names, serve, use_key  # noqa: F401  (page: the fixture)

pytestmark = NEEDS_BROWSER


@pytest.fixture
def library(app_settings, retriever):
    """(base URL, planted ids) of a server whose store holds LIBRARY."""
    app = create_app(app_settings, retriever=retriever)
    with serve(app) as url:
        ids, _ = plant(app.state.collection.store)
        yield url, ids


def api_names(url: str, **body) -> list[str]:
    r = httpx.post(url + "/search", json={"k": 10, **body})
    assert r.status_code == 200, r.text
    return [h["name"] for h in r.json()["results"]]


def wait_for_results(page, names: list[str]) -> None:  # noqa: F811
    page.wait_for_function("names => JSON.stringify([...document.querySelectorAll('.result .name')]"
                           ".map(n => n.textContent)) === JSON.stringify(names)", arg=names)


def keyword_search(browser_page, url: str, query: str) -> None:
    """Open the page on the planted library and search `query` in keyword mode."""
    browser_page.goto(url + "/")
    status = f"document.getElementById('status').textContent.includes('{len(LIBRARY)} clips')"
    browser_page.wait_for_function(status)
    browser_page.check("input[name=mode][value=keyword]")
    browser_page.fill("#query", query)
    browser_page.press("#query", "Enter")


def test_keyword_and_hybrid_modes_and_filter_chips(library, page, tmp_path):  # noqa: F811
    url, ids = library
    keyword_search(page, url, "kick")
    keyword = api_names(url, query="kick", mode="keyword")
    assert set(keyword) == {"Kick_808_Hard.wav", "kick_soft.wav", "SnareRoll.wav"}
    wait_for_results(page, keyword)
    assert page.locator(".result .score").first.get_attribute("title") == "BM25 score of the query's words"
    # keyword hits have no span in their clip: the label track and the regions would be empty files
    for fmt in ("audacity", "reaper"):
        button = page.locator(f"#exports button[data-format={fmt}]")
        assert button.is_disabled() and "keyword hits have none" in button.get_attribute("title")
    assert page.locator("#exports button[data-format=csv]").is_enabled()
    kick = page.locator(".result", has=page.locator(".name", has_text="Kick_808_Hard.wav"))
    assert kick.locator(".description").inner_text() == "a deep kick with a long tail"
    assert kick.locator(".fields").inner_text() == "pack: Drums Vol 1"  # its named fields, shown
    assert kick.locator(".user-tag").all_inner_texts() == ["kick", "808"]
    assert page.locator(".result", has=page.locator(".name", has_text="kick_soft.wav")).locator(
        ".description").is_hidden()  # no description, nothing shown

    page.check("input[name=mode][value=hybrid]")  # switching mode searches again
    wait_for_results(page, api_names(url, query="kick", mode="hybrid"))

    page.check("input[name=mode][value=keyword]")
    page.fill("#tag-filter", "Snare")
    page.press("#tag-filter", "Enter")
    assert page.locator("#filter-chips .chip-text").all_inner_texts() == ["snare"]
    wait_for_results(page, ["SnareRoll.wav"])
    assert api_names(url, query="kick", mode="keyword", tags_all=["snare"]) == ["SnareRoll.wav"]
    page.click("#filter-chips .chip-remove")
    wait_for_results(page, keyword)

    page.fill("#max-duration", "2.5")
    page.press("#max-duration", "Tab")
    assert page.locator("#filter-chips .chip-text").all_inner_texts() == ["≤ 2.5 s"]
    wait_for_results(page, api_names(url, query="kick", mode="keyword", max_duration=2.5))
    assert set(result_names(page)) == {"Kick_808_Hard.wav", "kick_soft.wav"}
    page.locator(".result .user-tag", has_text="808").click()  # a result's tag becomes a filter
    wait_for_results(page, ["Kick_808_Hard.wav"])
    assert page.locator("#filter-chips .chip-text").all_inner_texts() == ["≤ 2.5 s", "808"]
    shots = Path(os.environ.get("RETRIEVAL_SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "page-keyword-filters.png"), full_page=True)


def test_editing_a_clips_description_and_tags_with_the_key(library, page, tmp_path):  # noqa: F811
    url, ids = library
    keyword_search(page, url, "thunder")
    wait_for_results(page, ["thunder.ogg"])
    result = page.locator(".result").first
    assert result.locator("button.edit").is_hidden()  # no key, no editor

    use_key(page)
    result.locator("button.edit").click()
    assert result.locator(".edit-tags").input_value() == "field recording; weather"
    result.locator(".edit-description").fill("Thunder rolling over the hills")
    result.locator(".edit-tags").fill("Storm; weather, night")
    result.locator(".meta-editor .save").click()
    page.wait_for_selector(".result .clip-meta .description:has-text('rolling over the hills')")
    assert result.locator(".user-tag").all_inner_texts() == ["storm", "weather", "night"]
    stored = httpx.get(f"{url}/audio/{ids[5]}").json()
    assert (stored["description"], stored["user_tags"]) == ("Thunder rolling over the hills",
                                                            ["storm", "weather", "night"])
    assert api_names(url, query="hills", mode="keyword") == ["thunder.ogg"]

    result.locator("button.edit").click()  # a refused edit says why and changes nothing
    result.locator(".edit-tags").fill("x" * 65)
    result.locator(".meta-editor .save").click()
    page.wait_for_function("document.querySelector('.edit-message').textContent.startsWith('Not saved:')")
    assert httpx.get(f"{url}/audio/{ids[5]}").json()["user_tags"] == ["storm", "weather", "night"]
    result.locator(".meta-editor .cancel").click()
    assert result.locator(".user-tag").all_inner_texts() == ["storm", "weather", "night"]
    shots = Path(os.environ.get("RETRIEVAL_SCREENSHOT_DIR", tmp_path))
    page.screenshot(path=str(shots / "page-edited.png"), full_page=True)
    # the key is needed on the server too: without it the same edit is refused
    assert httpx.patch(f"{url}/audio/{ids[5]}", json={"description": "x"}).status_code == 401
    assert httpx.patch(f"{url}/audio/{ids[5]}", json={"description": "x"}, headers=WRITE).status_code == 200


UCS = [("DOORWood_Slam hard_JD_ACME.wav", "DOORWood"), ("DOORWood_Creak_JD_ACME.wav", "DOORWood"),
       ("AMBForst_Birds morning_JD_ACME.wav", "AMBForst")]


def add_ucs_clips(store) -> None:
    """The UCS clips (two DOORWood, one AMBForst) into `store`, with random vectors."""
    rng = np.random.default_rng(3)
    for i, (name, catid) in enumerate(UCS):
        clip = NewClip(name=name, location=f"/nowhere/{name}", sha256=f"{100 + i:064x}", duration=2.0,
                       sample_rate=48_000, tags=(Tag("Door", 0.5),),
                       meta=Metadata.of(fields={"ucs_catid": catid}))
        v = rng.standard_normal(store.dim).astype(np.float32)
        store.add(clip, v / np.linalg.norm(v), np.zeros(527, np.float32))


def test_the_category_filter_keeps_the_clips_of_one_ucs_category(app_settings, retriever, page):  # noqa: F811
    app = create_app(app_settings, retriever=retriever)
    with serve(app) as url:
        add_ucs_clips(app.state.collection.store)
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('status').textContent.includes('3 clips')")
        page.fill("#query", "a door")
        page.press("#query", "Enter")
        page.wait_for_function("document.querySelectorAll('.result').length === 3")
        page.fill("#category-filter", "DOORWood")
        page.press("#category-filter", "Enter")
        page.wait_for_function("document.querySelectorAll('.result').length === 2")
        assert sorted(result_names(page)) == sorted(n for n, c in UCS if c == "DOORWood")
        assert page.locator("#filter-chips").inner_text().startswith("category DOORWood")
        page.locator("#filter-chips .chip-remove").click()  # the chip removed: every clip again
        page.wait_for_function("document.querySelectorAll('.result').length === 3")
        forest = page.locator(".result", has=page.locator(".name", has_text="AMBForst_Birds"))
        forest.locator(".user-tag.category").click()  # a result's category filters by it
        page.wait_for_function("document.querySelectorAll('.result').length === 1")
        assert result_names(page) == ["AMBForst_Birds morning_JD_ACME.wav"]
