"""User text as stored (index/store/names.py): one rule of characters for a clip's name and its metadata,
cleaned where it is read from a file (`stored_text`), refused where a user sends it (`checked_text`): what
the one takes out is what the other refuses. Descriptions, tags and field values are composed (NFC), so a
tag typed decomposed (as macOS gives text) is the tag typed composed, in what is stored and in a filter;
the ingest queue holds its texts to the same "a store can hold it"."""

import json
import unicodedata
from dataclasses import replace

import numpy as np
import pytest

from index.ingest.queue import JobQueue
from index.store.metadata import MAX_USER_TAG_CHARS, Metadata, MetaLayers, normalize_tag, normalize_tags
from index.store.names import (
    BIDI_CONTROLS,
    DIRECTION,
    SPACING_CONTROLS,
    SURROGATE,
    TAKEN_OUT,
    checked_text,
    clip_name,
    refusal,
    stored_text,
)
from index.store.records import SearchFilter
from index.stores import StoreConfig
from tests.index.reference_store import BACKENDS, open_backend
from tests.index.test_store_contract import SPEC, clip, unit

NFD, NFC = "cafe\u0301", "caf\u00e9"


def test_what_the_rule_takes_out_is_every_control_but_spacing_and_every_direction_control():
    for code in range(0x110000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue  # lone surrogates: U+FFFD, not taken out
        control = unicodedata.category(ch) == "Cc" and ch not in SPACING_CONTROLS
        assert bool(TAKEN_OUT.fullmatch(ch)) == (control or ch in BIDI_CONTROLS), hex(code)


def test_what_a_file_has_taken_out_a_user_is_refused_and_nothing_else():
    """The refusal and the cleaning are one rule: a character refused in a user's text is one a file's text
    loses (a lone surrogate: U+FFFD); one accepted is kept (composed), or is spacing (a tab, a line break)."""
    for code in [*range(0x00, 0x100), *range(0x2000, 0x2070), 0xFEFF, 0x1F3B5, 0xD800, 0xDFFF]:
        ch = chr(code)
        text = f"a{ch}b"
        cleaned = stored_text(text, lines=True)
        if refusal(text) is None:
            composed = unicodedata.normalize("NFC", text)  # U+2000 is U+2002 composed
            assert ch in SPACING_CONTROLS or cleaned == composed, hex(code)
            assert checked_text(text, lines=True) == cleaned
        else:
            # a control character parts the two words it stands between, a direction control goes
            assert ch not in cleaned and cleaned in ("a b", "ab", "a\ufffdb"), hex(code)
            assert (cleaned == "a b") == (not DIRECTION.match(ch) and not SURROGATE.match(ch)), hex(code)
            with pytest.raises(ValueError, match="contains"):
                checked_text(text, lines=True)


@pytest.mark.parametrize(("text", "why"), [
    ("rain \u202eroof", "U+202E, a control of text's direction"),
    ("rain \u2066roof", "U+2066, a control of text's direction"),
    ("bell\x07", "the control character U+0007"),
    ("csi\x9b", "the control character U+009B"),
    ("del\x7f", "the control character U+007F"),
    ("nul\x00", "a NUL character"),
    ("half \ud83d", "a lone surrogate"),
])
def test_a_refusal_says_the_character(text, why):
    assert why in refusal(text)


@pytest.mark.parametrize("lb", ["\r\n", "\r", "\n", "\x85", "\u2028", "\u2029", "\v", "\f"])
def test_every_line_break_is_lf_in_lines_of_text_and_a_space_in_one_line(lb):
    assert checked_text(f" Line one{lb}Line two\t(tab) ", lines=True) == "Line one\nLine two\t(tab)"
    assert stored_text(f"Line one{lb}Line two", lines=True) == "Line one\nLine two"
    assert normalize_tag(f"Line{lb}Two") == "line two"
    assert clip_name(f"a{lb}b.wav") == ("a  b.wav" if lb == "\r\n" else "a b.wav")  # a name's each a space


def test_a_decomposed_tag_is_the_composed_one_and_cleaning_again_changes_nothing():
    assert normalize_tags([NFD, NFC, "CAFE\u0301", " caf\u00e9 "]) == (NFC,)
    assert normalize_tag("\u202eKick\x00 808") == "kick 808"
    for tag in (NFD, "\u0130stanbul", "STRASSE", "ǅemal", "e\x00\u0301"):
        assert normalize_tag(normalize_tag(tag)) == normalize_tag(tag)
        assert unicodedata.is_normalized("NFC", normalize_tag(tag))


def test_metadata_is_stored_composed_one_rule_for_its_description_tags_and_fields():
    meta = Metadata.of(description=f"  {NFD}\u202e au lait\r\nsecond\x85third\x1b ", tags=[NFD, NFC],
                       fields={"place": f"{NFD} \u2066de Flore"})
    assert meta == Metadata(f"{NFC} au lait\nsecond\nthird", (NFC,), (("place", f"{NFC} de Flore"),))
    assert Metadata.of(description=meta.description, tags=meta.tags, fields=meta.field_dict) == meta


def test_metadata_stored_before_reads_as_it_is_stored_now_and_equals_its_layers():
    """The clip database's columns of a clip stored before (a decomposed tag, a NEL, a direction control the
    service took then) read as its layers read (through Metadata.of): equal, so a reread of its file finds
    nothing changed rather than making the file's text the user's."""
    meta = Metadata.from_json(f"{NFD} with\x85milk\u202e", json.dumps([NFD, "kick"]), json.dumps({"k": NFD}))
    assert meta == Metadata(f"{NFC} with\nmilk", (NFC, "kick"), (("k", NFC),))
    layers = MetaLayers.from_json_text(json.dumps({"file": {"description": f"{NFD} with\x85milk\u202e",
                                                            "tags": [NFD, "kick"], "fields": {"k": NFD}},
                                                   "own": {}}))
    assert layers.meta.same(meta) and layers.caught_up(meta) == layers


def test_a_filter_of_either_form_matches_a_tag_given_in_either(tmp_path):
    """Stored through Metadata.of (the service, a file, the library), a tag given decomposed is matched by
    a filter of it composed and the other way round, on every backend."""
    xb = unit(np.random.default_rng(3).standard_normal((2, SPEC.dim)))
    for backend in BACKENDS:
        config = StoreConfig(data_dir=tmp_path / backend, backend=backend)  # type: ignore[arg-type]
        with open_backend(config, SPEC) as store:
            given = store.add(_with_tags(clip(0), [NFD]), xb[0], np.zeros(527, np.float32))
            store.add(_with_tags(clip(1), [NFC]), xb[1], np.zeros(527, np.float32))
            assert store.get(given.id).meta.tags == (NFC,)
            for form in (NFD, NFC, "CAFE\u0301"):
                for flt in (SearchFilter(tags_any=(form,)), SearchFilter(tags_all=(form,))):
                    assert len(store.search(xb[:1], 5, flt)[0]) == 2, (backend, form)
                assert store.search(xb[:1], 5, SearchFilter(tags_none=(form,)))[0] == [], (backend, form)


def _with_tags(new_clip, tags):
    return replace(new_clip, meta=Metadata.of(tags=tags))


def test_a_tag_is_bounded_as_stored_when_a_file_gives_it():
    from index.ingest.embedded import bounded

    tag = "x" * MAX_USER_TAG_CHARS
    assert bounded("", [f"  {tag}  ", f"\t{tag.upper()} "], {}, "t.wav").tags == (tag,)


@pytest.mark.parametrize(("name", "words"), [("a\x00b", "name contains a NUL character"),
                                             ("a\udce9b", "name contains a lone surrogate"),
                                             ("", "name must be a non-empty string")])
def test_the_queue_holds_its_texts_to_what_a_store_can_hold(tmp_path, name, words):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    with pytest.raises(ValueError, match=words):
        queue.enqueue(name=name, sha256="0" * 64, location="incoming/x")
    queue.close()


def test_a_library_filter_s_field_values_are_taken_as_they_are_stored():
    """A field value a library caller types (decomposed, with spaces around it) is the stored value it means,
    as the service's filter takes it: a SearchFilter normalises it as stored values are."""
    assert SearchFilter(fields={"pack": " cafe\u0301 "}).fields == (("pack", "caf\u00e9"),)
    assert SearchFilter(fields=[("pack", "Drums\r\nVol 1")]).fields == (("pack", "Drums\nVol 1"),)


@pytest.mark.parametrize(("text", "stored"), [
    ("Door\x1bslam", "Door slam"),  # two words a file's tool parted with ESC stay two words
    ("Door\x1b\x1bslam", "Door slam"),  # a run of them one space
    ("bell\x07 and\x1f unit", "bell and unit"),  # beside a space: nothing more
    ("\x07edge\x07", "edge"),
    ("e\x00\u0301", "\u00e9"),  # before a combining mark: nothing, and the mark composes
])
def test_a_control_character_parts_the_words_it_stands_between(text, stored):
    assert stored_text(text) == stored == stored_text(stored)
