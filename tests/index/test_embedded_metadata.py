"""The metadata inside audio files, read at ingestion: files tagged by independent tools (ffmpeg for BWF
``bext``, RIFF INFO and ID3; metaflac for FLAC; vorbiscomment for Ogg Vorbis) and RIFF chunks made here (an
iXML chunk, damaged chunks, chunks after the data of ffmpeg's RF64 files). Each value lands where
index/ingest/embedded.py's mapping says, keyword search finds each description's words, a damaged chunk
leaves the clip indexed with a warning, the user's metadata wins, and `reread-metadata` reads the files of a
store indexed before, resuming and reporting missing files.

A tool that is missing skips its case, unless CI is set: then the case fails.
"""

import io
import logging
import os
import shutil
import struct
import zlib
from dataclasses import replace

import pytest
import soundfile as sf

import retrieval.audio
from app.compose import open_collection
from index.ingest import worker
from index.ingest.embedded import file_metadata
from index.ingest.reread import reread_metadata
from index.ingest.ucs import ucs_fields
from index.store.metadata import Metadata, MetaLayers
from tests.audio_fixtures import need, run, sine
from tests.index.ingesting import add, file, passt_runs, upload


def ffmpeg_sine(path, *options: str) -> object:
    run(need("ffmpeg"), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
        "-t", "1", *options, path)
    return path


def tagged_flac(path, frequency: int, *tags: str):
    """A 1 s FLAC tone at `path` (its folder made), tagged by metaflac with `tags` ("--set-tag=KEY=value")."""
    path.parent.mkdir(exist_ok=True)
    run(need("ffmpeg"), "-loglevel", "error", "-f", "lavfi", "-i", f"sine=frequency={frequency}:duration=1",
        path)
    if tags:
        run(need("metaflac"), *tags, path)
    return path


def chunk(ident: bytes, data: bytes, declared: int | None = None) -> bytes:
    size = len(data) if declared is None else declared
    return ident + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"")


def wav_with(*chunks: bytes, seconds: float = 1.0) -> bytes:
    """A 16-bit WAV (written by soundfile) with the chunks appended after its data, RIFF size updated."""
    buf = io.BytesIO()
    sf.write(buf, sine(440.0, seconds=seconds), 32_000, format="WAV", subtype="PCM_16")
    body = buf.getvalue()[12:] + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


IXML = b"""<?xml version="1.0" encoding="UTF-8"?>
<BWFXML><IXML_VERSION>2.10</IXML_VERSION>
<USER><DESCRIPTION>Heavy wooden door slams shut</DESCRIPTION><CATEGORY>DOORS</CATEGORY>
<SUBCATEGORY>WOOD</SUBCATEGORY><CATID>DOORWood</CATID><FXNAME>Door Slam</FXNAME>
<LIBRARY>Castle Library</LIBRARY><KEYWORDS>door, slam; oak</KEYWORDS><NOTES>recorded in a barn</NOTES></USER>
<STEINBERG><ATTR_LIST>
<ATTR><TYPE>string</TYPE><NAME>MediaComment</NAME><VALUE>castle gate</VALUE></ATTR>
<ATTR><TYPE>string</TYPE><NAME>MediaCategoryPost</NAME><VALUE>not this one: USER comes first</VALUE></ATTR>
<ATTR><TYPE>string</TYPE><NAME>MediaTrackTitle</NAME><VALUE>Gate Slam</VALUE></ATTR>
</ATTR_LIST></STEINBERG></BWFXML>"""


@pytest.fixture
def library(tmp_path):
    """{name: (path, the metadata the mapping gives it)}, each file tagged by another tool."""
    lib = tmp_path / "lib"
    lib.mkdir()
    files = {}
    files["bwf.wav"] = (ffmpeg_sine(lib / "bwf.wav", "-write_bext", "1",
                                    "-metadata", "description=rain on a tin roof",
                                    "-metadata", "originator=Jane Doe",
                                    "-metadata", "originator_reference=JD42",
                                    "-metadata", "origination_date=2024-03-05",
                                    "-metadata", "comment=heavy downpour", "-metadata", "title=Tin Roof Rain",
                                    "-metadata", "genre=Weather"),
                        Metadata.of(description="rain on a tin roof\n\nheavy downpour", tags=["weather"],
                                    fields={"originator": "Jane Doe", "originator_reference": "JD42",
                                            "origination_date": "2024-03-05", "title": "Tin Roof Rain",
                                            "genre": "Weather"}))
    files["id3.mp3"] = (ffmpeg_sine(lib / "id3.mp3", "-c:a", "libmp3lame", "-metadata", "title=Glass Smash",
                                    "-metadata", "comment=bottle shatters on concrete",
                                    "-metadata", "genre=Foley", "-metadata", "keywords=glass; break"),
                        Metadata.of(description="bottle shatters on concrete",
                                    tags=["glass", "break", "foley"],
                                    fields={"title": "Glass Smash", "genre": "Foley"}))
    flac = ffmpeg_sine(lib / "vorbis.flac")
    run(need("metaflac"), "--set-tag=TITLE=Engine Idle", "--set-tag=DESCRIPTION=tractor engine idling",
        "--set-tag=COMMENT=diesel", "--set-tag=GENRE=Vehicles", "--set-tag=KEYWORDS=engine,farm", flac)
    files["vorbis.flac"] = (flac, Metadata.of(description="tractor engine idling\n\ndiesel",
                                              tags=["engine", "farm", "vehicles"],
                                              fields={"title": "Engine Idle", "genre": "Vehicles"}))
    ogg = ffmpeg_sine(lib / "comments.ogg", "-c:a", "libvorbis")
    run(need("vorbiscomment"), "-w", "-t", "TITLE=Owl Hoot", "-t", "DESCRIPTION=tawny owl calling at night",
        "-t", "KEYWORDS=owl;bird", "-t", "LIBRARY=Forest Nights", ogg)
    files["comments.ogg"] = (ogg, Metadata.of(description="tawny owl calling at night", tags=["owl", "bird"],
                                              fields={"title": "Owl Hoot", "library": "Forest Nights"}))
    ixml = lib / "ixml.wav"
    ixml.write_bytes(wav_with(chunk(b"iXML", IXML)))
    files["ixml.wav"] = (ixml, Metadata.of(
        description="Heavy wooden door slams shut\n\ncastle gate\n\nrecorded in a barn",
        tags=["door", "slam", "oak", "doors", "wood"],
        fields={"category": "DOORS", "subcategory": "WOOD", "ucs_catid": "DOORWood", "fx_name": "Door Slam",
                "library": "Castle Library", "title": "Gate Slam"}))
    return files


def test_every_value_lands_where_the_mapping_says_and_keyword_search_finds_it(library, settings,
                                                                                tone_retriever):
    with open_collection(settings, tone_retriever) as c:
        stored = {r.name: r for r, _ in add(c, *(file(path) for path, _ in library.values()))}
        for name, (_, want) in library.items():
            assert stored[name].meta == want, name
        for name, query in [("bwf.wav", "tin roof"), ("id3.mp3", "shatters concrete"),
                            ("vorbis.flac", "tractor idling"), ("comments.ogg", "tawny owl"),
                            ("ixml.wav", "wooden barn"), ("id3.mp3", "smash"),  # a title's word
                            ("comments.ogg", "forest nights")]:  # a library's
            assert c.search_keywords(query, 1)[0].record.name == name, query


def test_uploaded_bytes_and_their_ucs_name(library, settings, tone_retriever):
    data = library["bwf.wav"][0].read_bytes()
    with open_collection(settings, tone_retriever) as c:
        [(record, _)] = add(c, upload(data, "WATRRain_Tin roof_JD_ACME_take 2.wav"))
    fields = record.meta.field_dict
    assert record.meta.description == "rain on a tin roof\n\nheavy downpour"
    assert {k: fields[k] for k in fields if k.startswith("ucs_")} == {
        "ucs_catid": "WATRRain", "ucs_fx_name": "Tin roof", "ucs_creator_id": "JD", "ucs_source_id": "ACME",
        "ucs_user_data": "take 2"}


def test_what_the_user_gives_wins_part_by_part(library, settings, tone_retriever):
    path = library["bwf.wav"][0]
    mine = Metadata.of(description="my own words", tags=["favourite"], fields={"title": "My Title"})
    with open_collection(settings, tone_retriever) as c:
        [(record, _)] = add(c, worker.Item(path, path.name, path, file(path).sha256, mine))
    assert record.meta.description == "my own words"
    assert record.meta.tags == ("favourite", "weather")
    assert record.meta.field_dict["title"] == "My Title"
    assert record.meta.field_dict["originator"] == "Jane Doe"


def rf64_with_chunks_after_data(path, *chunks: bytes, head: bytes = b"RF64") -> bytes:
    """An RF64 file written by ffmpeg (ds64 chunk, data size 0xFFFFFFFF, bext before the data) with the
    chunks appended after its data, as editors write iXML; the ds64 RIFF size updated; `head` BW64 relabels
    it."""
    data = bytearray(ffmpeg_sine(path, "-rf64", "always", "-write_bext", "1",
                                 "-metadata", "originator=Dawn Recordist").read_bytes())
    assert data[:4] == b"RF64" and data[12:16] == b"ds64" and b"data\xff\xff\xff\xff" in data
    data += b"".join(chunks)
    data[:4] = head
    data[20:28] = struct.pack("<Q", len(data) - 8)
    return bytes(data)


def ffmpeg_id3(path, *options: str) -> bytes:
    """The ID3v2 tag ffmpeg writes at the head of an MP3, alone."""
    head = ffmpeg_sine(path, "-c:a", "libmp3lame", *options).read_bytes()
    assert head[:3] == b"ID3"
    return head[:10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9])]


def test_rf64_chunks_after_the_data_are_read_and_the_audio_decodes(tmp_path, settings, tone_retriever,
                                                                   caplog):
    id3 = ffmpeg_id3(tmp_path / "tag.mp3", "-metadata", "genre=Nature", "-metadata", "title=Dawn Chorus")
    path = tmp_path / "dawn.wav"
    path.write_bytes(rf64_with_chunks_after_data(path, chunk(b"iXML", IXML), chunk(b"id3 ", id3)))
    with caplog.at_level(logging.WARNING):
        meta = file_metadata(path.read_bytes(), path.name)
    assert caplog.text == ""
    fields = meta.field_dict
    assert fields["fx_name"] == "Door Slam" and "oak" in meta.tags  # iXML, after the data
    assert fields["originator"] == "Dawn Recordist"  # bext, before it
    assert fields["genre"] == "Nature" and "nature" in meta.tags  # ID3, after it
    bw64 = rf64_with_chunks_after_data(tmp_path / "bw64.wav", chunk(b"iXML", IXML), chunk(b"id3 ", id3),
                                       head=b"BW64")
    assert file_metadata(bw64, "bw64.wav") == meta
    (tmp_path / "bw64.wav").write_bytes(bw64)  # libsndfile knows RF64 only: read as the RF64 it is
    with open_collection(settings, tone_retriever) as c:
        added = add(c, file(path), file(tmp_path / "bw64.wav"))
    for record, created in added:
        assert created and record.duration == pytest.approx(1.0, abs=0.01) and record.meta == meta


def test_an_rf64_chunk_of_unknown_size_ends_the_walk_keeping_what_came_before(tmp_path):
    """A chunk sized 0xFFFFFFFF that ds64's table does not size: where the next one starts is not known."""
    id3 = ffmpeg_id3(tmp_path / "tag.mp3", "-metadata", "genre=Nature")
    unknown = b"junk" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 16
    meta = file_metadata(rf64_with_chunks_after_data(tmp_path / "odd.wav", chunk(b"iXML", IXML), unknown,
                                                     chunk(b"id3 ", id3)), "odd.wav")
    assert meta.field_dict["originator"] == "Dawn Recordist" and meta.field_dict["fx_name"] == "Door Slam"
    assert "genre" not in meta.field_dict


DEEP = b"<BWFXML>" + b"<USER>" * 200 + b"x" + b"</USER>" * 200 + b"</BWFXML>"
INFO_LATIN1 = chunk(b"LIST", b"INFO" + chunk(b"ICMT", b"caf\xe9 ambience\xff\xfe"))
DAMAGED = {
    "huge bext": (wav_with(chunk(b"bext", b"\0" * 16, declared=0x7FFF0000)), "declares"),
    "bext cut short": (wav_with(chunk(b"bext", b"short")), "bext chunk cannot be read"),
    "truncated end": (wav_with(chunk(b"iXML", IXML))[:-200], "cut short"),
    "invalid UTF-8 in INFO": (wav_with(INFO_LATIN1), "not UTF-8"),
    "deeply nested iXML": (wav_with(chunk(b"iXML", DEEP)), "iXML chunk cannot be read"),
    "entities in iXML": (wav_with(chunk(b"iXML", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><BWFXML/>')),
                         "iXML chunk cannot be read"),
    "entities in UTF-16 iXML": (wav_with(chunk(b"iXML", '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x '
                                               '[<!ENTITY a "aaaa">]><BWFXML><USER><DESCRIPTION>&a;&a;'
                                               '</DESCRIPTION></USER></BWFXML>'.encode("utf-16"))),
                                "iXML chunk cannot be read"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_chunk_leaves_the_clip_indexed_with_a_warning(case, settings, tone_retriever, caplog):
    data, warning = DAMAGED[case]
    with caplog.at_level(logging.WARNING), open_collection(settings, tone_retriever) as c:
        [(record, created)] = add(c, upload(data, f"{case}.wav"))
    assert created and record.duration > 0.5
    assert warning in caplog.text, caplog.text
    if case == "invalid UTF-8 in INFO":
        assert record.meta.description == "café ambience\xff\xfe"
    if case in ("truncated end", "entities in UTF-16 iXML"):  # nothing read of it: no value cut, no entity
        assert record.meta == Metadata()


def bext(description: bytes, originator: bytes = b"", history: bytes = b"") -> bytes:
    """A bext chunk's body (EBU Tech 3285, version 1) with these fields."""
    return struct.pack("<256s32s32s10s8sQH64s10s180s", description, originator, b"", b"2026-12-04", b"",
                       0, 1, b"", b"", b"") + history


def test_each_bext_field_is_decoded_on_its_own(caplog):
    """A UTF-8 description beside a Latin-1 originator stays UTF-8 (the whole chunk was read as Latin-1), and
    UTF-8 filling the description's 256 bytes, cut within its last character, loses that character alone."""
    with caplog.at_level(logging.WARNING):
        meta = file_metadata(wav_with(chunk(b"bext", bext("Glas zerbricht über Stein".encode(),
                                                          b"Ger\xe4t", b"A=PCM,T=Ger\xe4t\r\n")),
                                      seconds=0.1), "glass.wav")
    assert meta.description == "Glas zerbricht über Stein" and meta.field_dict["originator"] == "Gerät"
    assert "bext originator text is not UTF-8" in caplog.text and "description" not in caplog.text
    full = ("Glas zerbricht " + "ä" * 200).encode()[:256]
    assert len(full) == 256 and full[-1] == 0xC3  # the first byte of an ä, its second cut off
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        meta = file_metadata(wav_with(chunk(b"bext", bext(full)), seconds=0.1), "cut.wav")
    assert meta.description == "Glas zerbricht " + "ä" * 120 and "not UTF-8" not in caplog.text
    latin = b"caf\xe9 " * 51 + b"\xe9"  # Latin-1 filling the field: no UTF-8 in it to keep
    meta = file_metadata(wav_with(chunk(b"bext", bext(latin)), seconds=0.1), "latin.wav")
    assert meta.description == latin.decode("latin-1")


def test_text_that_is_not_utf8_is_read_as_windows_tools_write_it(caplog):
    """Windows tools write a bext description in Windows-1252: its curly quotes and `…` (0x93, 0x94, 0x85)
    were read as Latin-1's control characters (then dropped, or NEL a line break). A byte Windows-1252 has no
    character for (0x81) is read alone as Latin-1, and its control dropped: the field's other bytes are still
    Windows-1252's (one such byte sent the whole field to Latin-1, its curly quotes dropped with it)."""
    quoted = file_metadata(wav_with(chunk(b"bext", bext(b"Door \x93slam\x94 \x85 caf\xe9")), seconds=0.1),
                           "door.wav")
    assert quoted.description == "Door \u201cslam\u201d \u2026 caf\u00e9"
    with caplog.at_level(logging.WARNING):
        odd = file_metadata(wav_with(chunk(b"bext", bext(b"caf\xe9 \x81ambience")), seconds=0.1), "odd.wav")
        both = file_metadata(wav_with(chunk(b"bext", bext(b"Door \x93slam\x94 \x81")), seconds=0.1),
                             "both.wav")
    assert odd.description == "caf\u00e9 ambience" and both.description == "Door \u201cslam\u201d"
    assert caplog.text.count("both.wav: its bext description text is not UTF-8; read as Windows-1252") == 1


def test_bounds_are_kept_with_a_warning(caplog):
    ixml = (b"<BWFXML><USER><DESCRIPTION>" + b"w" * 3000 + b"</DESCRIPTION><KEYWORDS>"
            + b",".join(b"k%d" % i for i in range(40)) + b"</KEYWORDS><FXNAME>" + b"f" * 300
            + b"</FXNAME></USER></BWFXML>")
    with caplog.at_level(logging.WARNING):
        meta = file_metadata(wav_with(chunk(b"iXML", ixml), seconds=0.1), "long.wav")
    assert len(meta.description) == 2000 and len(meta.tags) == 32 and len(meta.field_dict["fx_name"]) == 200
    assert "cut to 2000" in caplog.text and "tags, the last 8 dropped" in caplog.text


def meta_of(collection, clip_id: int) -> Metadata:
    record = collection.get(clip_id)
    assert record is not None
    return record.meta


def test_reread_metadata_fills_a_store_indexed_before_resumes_and_reports_missing_files(
        library, settings, tone_retriever, monkeypatch, tmp_path):
    paths = {name: path for name, (path, _) in library.items()}
    ledger = tmp_path / "data" / "reread.log"
    with monkeypatch.context() as m:  # a store indexed before the metadata inside files was read
        m.setattr(worker, "file_metadata", lambda source, name: Metadata())
        with open_collection(settings, tone_retriever) as c:
            ids = {r.name: r.id for r, _ in add(c, *(file(p) for p in paths.values()))}
            assert all(meta_of(c, i) == Metadata() for i in ids.values())
            c.edit_metadata(ids["id3.mp3"], lambda m: Metadata.of(description="user's words", tags=["mine"]))
    paths["comments.ogg"].unlink()
    with open_collection(settings, tone_retriever) as c:
        report = reread_metadata(c, ledger=ledger, progress=False)
        assert (report.read, report.skipped) == (4, 0)
        assert [(clip_id, why.split(" (")[0]) for clip_id, _, why in report.unreachable] == [
            (ids["comments.ogg"], "its file is gone")]
        for name in ("bwf.wav", "vorbis.flac", "ixml.wav"):
            assert meta_of(c, ids[name]) == library[name][1], name
        assert meta_of(c, ids["id3.mp3"]) == Metadata.of(description="user's words", tags=["mine"]).over(
            library["id3.mp3"][1])

        again = reread_metadata(c, ledger=ledger, progress=False)
        assert (again.read, again.skipped, len(again.unreachable)) == (0, 4, 1)
        assert reread_metadata(c, ledger=ledger, again=True, progress=False).read == 4


def test_reread_metadata_fingerprints_clips_stored_before_so_a_later_retag_keeps_them(
        tmp_path, settings, tone_retriever, monkeypatch):
    """Clips stored before fingerprints were kept get theirs from their files (when those still hold the bytes
    indexed; a file changed since is left to `index add`), and the next retag then keeps the clip."""
    from index.ingest.builder import index_paths
    from retrieval.audio import audio_sha256, decode_audio

    lib = tmp_path / "lib"
    lib.mkdir()
    ogg = ffmpeg_sine(lib / "wind.ogg", "-c:a", "libvorbis")
    changed = ffmpeg_sine(lib / "door.wav")
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).added == 2
        con = c.store.db.connection()  # a store made before fingerprints
        con.execute("UPDATE clips SET audio_sha256 = NULL")
        con.commit()
        [clip] = c.store.at_location(str(ogg.resolve()))
        assert clip.audio_sha256 is None
    ffmpeg_sine(changed, "-af", "volume=0.5")  # other bytes, other audio since it was indexed
    with open_collection(settings, tone_retriever) as c:
        report = reread_metadata(c, ledger=tmp_path / "reread.log", progress=False)
        assert (report.read, report.fingerprinted) == (2, 1)
        assert c.get(clip.id).audio_sha256 == audio_sha256(decode_audio(ogg).wave)
        assert c.store.at_location(str(changed.resolve()))[0].audio_sha256 is None
    run(need("vorbiscomment"), "-w", "-t", "DESCRIPTION=Gentle breeze", ogg)
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        got = index_paths(c, [lib], progress=False)
        assert (got.retagged, got.replaced) == (1, 1) and calls == [1]  # door.wav re-edited: tagged again
        assert c.get(clip.id).meta.description == "Gentle breeze"


def test_comments_players_write_for_themselves_are_not_descriptions(tmp_path):
    """iTunes' COMM frames (iTunNORM, iTunSMPB: hex numbers) next to the comment a person wrote."""
    from mutagen.id3 import COMM, ID3

    path = ffmpeg_sine(tmp_path / "itunes.mp3", "-c:a", "libmp3lame", "-metadata", "comment=church bells")
    tags = ID3(path)
    tags.add(COMM(encoding=3, lang="eng", desc="iTunNORM", text=" 00000210 000007E8 00001B2F"))
    tags.add(COMM(encoding=3, lang="eng", desc="iTunSMPB", text=" 00000000 00000210 00000A2C"))
    tags.save(path)
    assert len(ID3(path).getall("COMM")) == 2  # ffmpeg wrote the comment as TXXX:comment
    assert file_metadata(path, path.name).description == "church bells"


def test_a_description_a_file_gives_twice_keeps_both_and_a_field_its_first(tmp_path):
    """Vorbis comments may repeat a name: two DESCRIPTIONs are two paragraphs (the second was dropped), two
    TITLEs the first; a source after it (none here) would not add to them."""
    path = tagged_flac(tmp_path / "rain.flac", 440, "--set-tag=DESCRIPTION=Heavy rain on a tin roof",
                       "--set-tag=DESCRIPTION=Second paragraph, thunder far off",
                       "--set-tag=DESCRIPTION=Heavy rain on a tin roof", "--set-tag=TITLE=Rain",
                       "--set-tag=TITLE=Rain again", "--set-tag=COMMENT=recorded in May")
    meta = file_metadata(path, path.name)
    assert meta.description == ("Heavy rain on a tin roof\n\nSecond paragraph, thunder far off\n\n"
                                "recorded in May")
    assert meta.field_dict["title"] == "Rain"
    ixml = chunk(b"iXML", b"<BWFXML><USER><DESCRIPTION>from iXML</DESCRIPTION></USER></BWFXML>")
    info = chunk(b"LIST", b"INFO" + chunk(b"ISBJ", b"from INFO") + chunk(b"ISBJ", b"more from INFO"))
    assert file_metadata(wav_with(ixml, info, seconds=0.1), "w.wav").description == "from iXML"
    assert file_metadata(wav_with(info, seconds=0.1), "w.wav").description == "from INFO\n\nmore from INFO"


def test_a_file_retagged_where_it_lies_keeps_its_clip_and_takes_its_new_metadata(tmp_path, settings,
                                                                                 tone_retriever, monkeypatch):
    """A librarian's tool rewrote the file's tags (other bytes, the same audio): `index add` again keeps its
    clip (same id, vectors and windows) with the file's sha256 and metadata now, what the user set over it,
    what the file said before and no longer says dropped, and runs no PaSST."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    lib.mkdir()
    write_wav = ffmpeg_sine(lib / "other.wav")
    ogg = ffmpeg_sine(lib / "wind.ogg", "-c:a", "libvorbis")
    tag = need("vorbiscomment")
    run(tag, "-w", "-t", "DESCRIPTION=Strong wind gusts", "-t", "TITLE=Wind gust", "-t", "KEYWORDS=wind", ogg)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).added == 2
        [old] = c.store.at_location(str(ogg.resolve()))
        assert old.meta_layers.file == Metadata.of(description="Strong wind gusts", tags=["wind"],
                                            fields={"title": "Wind gust"})
        c.edit_metadata(old.id, lambda m: Metadata.of(fields={"reviewer": "ana"}, tags=["outdoor"]).over(m))
        vector, windows = c.store.vectors([old.id]), c.store.timelines([old.id])[old.id]
    assert old.audio_sha256 is not None and len(old.audio_sha256) == 64
    run(tag, "-w", "-t", "DESCRIPTION=Gentle breeze", "-t", "TITLE=Breeze", "-t", "KEYWORDS=breeze", ogg)
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], progress=False)
        assert (report.added, report.skipped, report.retagged, report.replaced) == (0, 1, 1, 0)
        assert calls == []  # no PaSST
        [now] = c.store.at_location(str(ogg.resolve()))
        assert now.id == old.id and now.sha256 == sha256_of(ogg) != old.sha256 and c.count() == 2
        assert now.audio_sha256 == old.audio_sha256
        # what the file said and says no more ("wind") is gone; what the user set ("outdoor", reviewer) stays,
        # first (what you set wins, as when a clip is first stored)
        assert now.meta.description == "Gentle breeze" and now.meta.tags == ("outdoor", "breeze")
        assert now.meta.field_dict == {"title": "Breeze", "reviewer": "ana"}
        assert now.meta_layers.file == Metadata.of(description="Gentle breeze", tags=["breeze"],
                                            fields={"title": "Breeze"})
        assert c.search_keywords("gusts", 5) == [] and c.search_keywords("breeze", 5)[0].record.id == now.id
        assert (c.store.vectors([now.id]) == vector).all()
        kept = c.store.timelines([now.id])[now.id]
        assert (kept.windows.vectors == windows.windows.vectors).all() and (kept.peaks == windows.peaks).all()
        again = index_paths(c, [lib], progress=False)
        assert (again.added, again.skipped, again.retagged, again.replaced) == (0, 2, 0, 0)
        assert c.store.at_location(str(write_wav.resolve()))[0].name == "other.wav"


def test_a_file_re_edited_where_it_lies_replaces_its_clip_when_indexed_again(tmp_path, settings,
                                                                            tone_retriever, monkeypatch):
    """Its audio changed (another tone): `index add` again tags it (PaSST) and holds it once, as it is now,
    what the user set on the old clip laid under (not what its file said then); a run stopped between the
    add and the removal converges."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    lib.mkdir()
    ffmpeg_sine(lib / "other.wav")
    ogg = ffmpeg_sine(lib / "wind.ogg", "-c:a", "libvorbis")
    tag = need("vorbiscomment")
    run(tag, "-w", "-t", "DESCRIPTION=Strong wind gusts", "-t", "KEYWORDS=wind", ogg)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).added == 2
        [old] = c.store.at_location(str(ogg.resolve()))
        c.edit_metadata(old.id, lambda m: m.over(Metadata.of(fields={"reviewer": "ana"})))
    sine_ogg(ogg, 880.0, "DESCRIPTION=Gentle breeze")
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], progress=False)
        assert (report.added, report.skipped, report.retagged, report.replaced) == (1, 1, 0, 1)
        assert calls == [1]
        [now] = c.store.at_location(str(ogg.resolve()))
        assert c.count() == 2 and c.get(old.id) is None and now.id != old.id
        assert now.audio_sha256 != old.audio_sha256
        assert now.meta.description == "Gentle breeze" and now.meta.field_dict == {"reviewer": "ana"}
        assert now.meta.tags == ()  # the old file's keyword ("wind"), which the file no longer has: gone
        assert index_paths(c, [lib], progress=False).replaced == 0
    sine_ogg(ogg, 1320.0, "DESCRIPTION=Dead calm")
    with open_collection(settings, tone_retriever) as c:
        [(newest, _)] = add(c, file(ogg))  # added, and stopped before the clip it replaces was removed
        assert len(c.store.at_location(str(ogg.resolve()))) == 2
        report = index_paths(c, [lib], progress=False)
        assert (report.added, report.skipped, report.replaced) == (0, 2, 1)
        assert [r.id for r in c.store.at_location(str(ogg.resolve()))] == [newest.id] and c.count() == 2


def sine_ogg(path, frequency: float, comment: str) -> None:
    """The Ogg Vorbis file at `path` written again with another tone (new audio), tagged with `comment`."""
    tmp = path.with_name("tmp-" + path.name)
    run(need("ffmpeg"), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
        f"sine=frequency={frequency}:duration=1", "-t", "1", "-c:a", "libvorbis", tmp)
    run(need("vorbiscomment"), "-w", "-t", comment, tmp)
    os.replace(tmp, path)


def sha256_of(path) -> str:
    from retrieval.durable import sha256_file

    return sha256_file(path)


def test_a_file_moved_or_renamed_keeps_its_clip_which_follows_it_and_a_copy_does_not_move_it(
        tmp_path, settings, tone_retriever, monkeypatch):
    """A library reorganised: `index add` again finds the moved file's bytes stored, under a path that is
    gone; the clip (same id, no PaSST) takes the new location and name, and its words follow the name. A copy
    of a file that is still where it was is the same content: its clip stays where it is."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    (lib / "old").mkdir(parents=True)
    first = ffmpeg_sine(lib / "old" / "door_slam.wav")
    kept = ffmpeg_sine(lib / "old" / "keep.ogg", "-c:a", "libvorbis")
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], recursive=True, progress=False).added == 2
        [clip] = c.store.at_location(str(first.resolve()))
        [other] = c.store.at_location(str(kept.resolve()))
    (lib / "new").mkdir()
    moved = (lib / "new" / "gate_creak.wav").resolve()
    os.replace(first, moved)
    shutil.copy(kept, lib / "new" / "keep copy.ogg")
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], recursive=True, progress=False, metadata=None)
        assert (report.added, report.skipped, report.moved, report.replaced) == (0, 3, 1, 0) and calls == []
        now = c.get(clip.id)
        assert (now.location, now.name, now.sha256) == (str(moved), "gate_creak.wav", clip.sha256)
        assert c.store.at_location(str(first.resolve())) == [] and c.count() == 2
        assert c.search_keywords("creak", 5)[0].record.id == clip.id and c.search_keywords("slam", 5) == []
        assert c.get(other.id).location == str(kept.resolve())  # still there: the copy does not move it
        again = index_paths(c, [lib], recursive=True, progress=False)
        assert (again.added, again.skipped, again.moved) == (0, 3, 0)
    # renamed and retagged at once (a UCS rename that writes the tags too); a copy retagged apart, the file
    # it was copied from still there, is a clip of its own
    renamed = (lib / "new" / "WINDGust_Gentle breeze.ogg").resolve()
    os.replace(kept, renamed)
    run(need("vorbiscomment"), "-w", "-t", "DESCRIPTION=Gentle breeze", renamed)
    run(need("vorbiscomment"), "-w", "-t", "DESCRIPTION=Howling gale", lib / "new" / "keep copy.ogg")
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], recursive=True, progress=False)
        assert (report.added, report.retagged, report.moved, report.replaced) == (1, 1, 1, 0)
        assert calls == []  # the copy's clip takes the analysis of the clip of the same audio: no PaSST
        now = c.get(other.id)
        assert (now.location, now.name, now.meta.description) == (str(renamed), renamed.name, "Gentle breeze")
        assert now.audio_sha256 == other.audio_sha256 and c.count() == 3
        [copy] = c.store.at_location(str((lib / "new" / "keep copy.ogg").resolve()))
        assert copy.id not in (clip.id, other.id) and c.search_keywords("howling", 5)[0].record.id == copy.id
        assert copy.audio_sha256 == other.audio_sha256 and copy.meta.description == "Howling gale"


def test_swapped_names_a_file_moved_over_another_and_a_ucs_rename_each_leave_every_clip_where_its_bytes_are(
        tmp_path, settings, tone_retriever, monkeypatch):
    """Two files whose names were swapped: each clip follows its bytes (the paths still exist, but hold the
    other's). A file moved over another indexed file: its clip moves there with its own metadata, the
    overwritten file's clip is replaced, nothing of it laid under. A UCS rename: the new name's fields, and
    none of the old name's."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    lib.mkdir()
    dog = ffmpeg_sine(lib / "dog_bark.wav")
    cat = ffmpeg_sine(lib / "cat_meow.wav", "-af", "volume=0.5")
    bird = ffmpeg_sine(lib / "bird.wav", "-af", "volume=0.25", "-metadata", "title=pelican honk")
    door = ffmpeg_sine(lib / "door.wav", "-af", "volume=0.125")
    ucs = ffmpeg_sine(lib / "DOORWood_Creak slow_JD_ACME.wav", "-af", "volume=0.7")
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).added == 5
        ids = {r.name: r.id for r in c.store.list(limit=10)}
    swap = lib / "swap.tmp"
    os.replace(dog, swap)
    os.replace(cat, dog)
    os.replace(swap, cat)
    os.replace(door, bird)  # door.wav moved over bird.wav
    renamed = lib / "WATRSurf_Wave crash_KM.wav"
    os.replace(ucs, renamed)
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], progress=False)
        assert (report.added, report.moved, report.replaced) == (0, 4, 1) and calls == []
        where = {r.id: (r.name, r.sha256) for r in c.store.list(limit=10)}
        assert where[ids["dog_bark.wav"]] == ("cat_meow.wav", sha256_of(cat))
        assert where[ids["cat_meow.wav"]] == ("dog_bark.wav", sha256_of(dog))
        assert c.search_keywords("bark", 5)[0].record.id == ids["cat_meow.wav"]
        assert c.get(ids["bird.wav"]) is None and c.count() == 4
        moved = c.get(ids["door.wav"])
        assert (moved.name, moved.sha256) == ("bird.wav", sha256_of(bird)) and moved.meta.field_dict == {}
        assert c.search_keywords("pelican", 5) == []
        fields = c.get(ids["DOORWood_Creak slow_JD_ACME.wav"]).meta.field_dict
        assert (fields["ucs_catid"], fields["ucs_fx_name"]) == ("WATRSurf", "Wave crash")
        assert fields == ucs_fields(renamed.name) and "ACME" not in fields.values()  # the old name's: gone
        assert c.search_keywords("creak", 5) == [] and c.search_keywords("crash", 5)
        again = index_paths(c, [lib], progress=False)
        assert (again.added, again.moved, again.replaced) == (0, 0, 0)


def test_a_copy_of_a_files_old_version_keeps_the_clip_it_is(tmp_path, settings, tone_retriever):
    """0copy.ogg, copied before wind.ogg was retagged, still holds the old bytes: each file has a clip of its
    own, with its own words, whether the copy is walked first (it takes the old clip, whose path no longer
    holds those bytes) or last (the retagged file keeps it)."""
    from index.ingest.builder import index_paths

    for copy_name in ("0copy.ogg", "zcopy.ogg"):
        lib = tmp_path / f"lib-{copy_name[0]}"
        lib.mkdir()
        ogg = ffmpeg_sine(lib / "wind.ogg", "-c:a", "libvorbis")
        tag = need("vorbiscomment")
        run(tag, "-w", "-t", "DESCRIPTION=Strong wind gusts", ogg)
        settings_here = settings.model_copy(update={"data_dir": tmp_path / f"data-{copy_name}"})
        with open_collection(settings_here, tone_retriever) as c:
            assert index_paths(c, [lib], progress=False).added == 1
            [old] = c.store.at_location(str(ogg.resolve()))
        shutil.copy(ogg, lib / copy_name)
        run(tag, "-w", "-t", "DESCRIPTION=Gentle breeze", ogg)
        with open_collection(settings_here, tone_retriever) as c:
            report = index_paths(c, [lib], progress=False)
            [kept] = c.store.at_location(str(ogg.resolve()))
            [copy] = c.store.at_location(str((lib / copy_name).resolve()))
            assert copy.sha256 == old.sha256 and kept.sha256 == sha256_of(ogg) and report.replaced == 0
            if copy_name == "zcopy.ogg":  # the retagged file walked first keeps the clip
                assert kept.id == old.id and (report.added, report.retagged, report.moved) == (1, 1, 0)
            else:  # the copy walked first takes it: the clip's path no longer holds its bytes
                assert copy.id == old.id and (report.added, report.retagged, report.moved) == (1, 0, 1)
            assert c.search_keywords("gusts", 5)[0].record.id == copy.id
            assert c.search_keywords("breeze", 5)[0].record.id == kept.id and c.count() == 2
            again = index_paths(c, [lib], progress=False)
            assert (again.added, again.skipped, again.retagged, again.replaced) == (0, 2, 0, 0)




def test_a_copy_hashed_while_its_original_still_held_the_old_bytes_gets_a_clip_of_its_own(tmp_path, settings,
                                                                                         tone_retriever,
                                                                                         monkeypatch):
    """The copy is walked first and its original is retagged only after (a librarian's tool still writing):
    the copy is first taken as the clip's file, then the retag moves that clip to the new bytes; the copy is
    then indexed again, as the file it is."""
    from index.ingest import builder

    lib = tmp_path / "lib"
    lib.mkdir()
    ogg = ffmpeg_sine(lib / "wind.ogg", "-c:a", "libvorbis")
    run(need("vorbiscomment"), "-w", "-t", "DESCRIPTION=Strong wind gusts", ogg)
    with open_collection(settings, tone_retriever) as c:
        assert builder.index_paths(c, [lib], progress=False).added == 1
        [old] = c.store.at_location(str(ogg.resolve()))
    shutil.copy(ogg, lib / "0copy.ogg")
    run(need("vorbiscomment"), "-w", "-t", "DESCRIPTION=Gentle breeze", ogg)
    monkeypatch.setattr(builder, "moved_from", lambda record, path: False)  # the original as it was, then
    with open_collection(settings, tone_retriever) as c:
        report = builder.index_paths(c, [lib], progress=False)
        assert (report.added, report.skipped, report.retagged) == (1, 0, 1)
        [kept] = c.store.at_location(str(ogg.resolve()))
        [copy] = c.store.at_location(str((lib / "0copy.ogg").resolve()))
        assert kept.id == old.id and copy.id != old.id and copy.sha256 == old.sha256
        assert c.search_keywords("gusts", 5)[0].record.id == copy.id


def test_what_a_clip_has_less_what_its_file_said_is_what_the_user_set():
    """Metadata.less, by hand: the description unless it is the file's, tags the file lacked, fields whose
    value is not the file's."""
    read = Metadata.of(description="Door slam", tags=["door", "slam"], fields={"title": "Slam", "take": "2"})
    have = Metadata.of(description="Door slam", tags=["door", "mine", "slam"],
                       fields={"title": "Slam", "take": "3", "reviewer": "ana"})
    assert have.less(read) == Metadata.of(tags=["mine"], fields={"take": "3", "reviewer": "ana"})
    assert have.less(Metadata()) == have and read.less(read) == Metadata()
    edited = Metadata.of(description="Heavy door", tags=["door"])
    assert edited.less(read) == Metadata.of(description="Heavy door")


def test_reread_metadata_drops_what_a_file_no_longer_says_and_keeps_what_the_user_set(tmp_path, settings,
                                                                                     tone_retriever):
    lib = tmp_path / "lib"
    lib.mkdir()
    ogg = ffmpeg_sine(lib / "rain.ogg", "-c:a", "libvorbis")
    tag = need("vorbiscomment")
    run(tag, "-w", "-t", "DESCRIPTION=Rain on a tin roof", "-t", "KEYWORDS=rain, roof, thunder", ogg)
    with open_collection(settings, tone_retriever) as c:
        [(record, _)] = add(c, file(ogg))
        c.edit_metadata(record.id, lambda m: Metadata.of(tags=["favourite"]).over(m))
    run(tag, "-w", "-t", "DESCRIPTION=Rain on a tin roof", "-t", "KEYWORDS=rain, roof", ogg)  # no thunder
    with open_collection(settings, tone_retriever) as c:
        report = reread_metadata(c, ledger=tmp_path / "ledger", progress=False)
        assert (report.read, report.changed) == (1, 1)
        now = c.get(record.id)
        assert now.meta.tags == ("favourite", "rain", "roof") and now.meta.description == "Rain on a tin roof"
        assert now.meta_layers.file == Metadata.of(description="Rain on a tin roof", tags=["rain", "roof"])
        assert now.meta_layers.own == Metadata.of(tags=["favourite"])
        assert c.search_keywords("thunder", 5) == []


def test_a_long_recording_moved_and_retagged_at_once_keeps_its_clip_and_another_costs_no_fingerprint(
        tmp_path, settings, tone_retriever, monkeypatch):
    """A recording read window by window (long: here over 5 s) renamed and retagged at once: a clip as long
    as it is whose file is gone may hold its audio, so it is fingerprinted (one decoding pass) and keeps that
    clip, with no PaSST. A new long file that no such clip could be costs no fingerprint before PaSST."""
    from dataclasses import replace

    from app.compose import index_limits
    from index.ingest.builder import index_paths

    limits = replace(index_limits(settings), whole_up_to_s=5.0)
    lib = tmp_path / "lib"
    lib.mkdir()
    tape = lib / "tape.wav"
    run(need("ffmpeg"), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=12",
        "-metadata", "title=Harbour at dawn", tape)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False, limits=limits).added == 1
        [clip] = c.store.at_location(str(tape.resolve()))
    assert clip.duration == pytest.approx(12.0) and clip.audio_sha256
    renamed = lib / "harbour_dusk.wav"
    run(need("ffmpeg"), "-loglevel", "error", "-i", tape, "-c", "copy", "-metadata", "title=Harbour at dusk",
        renamed)
    tape.unlink()
    run(need("ffmpeg"), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=660:duration=9",
        lib / "new.wav")
    calls = passt_runs(monkeypatch)
    fingerprinted: list[str] = []
    fingerprint = retrieval.audio.audio_sha256

    def counted(wave):
        if isinstance(wave, retrieval.audio.LongWave):  # a pass of decoding (a held wave's costs ~1 ms)
            fingerprinted.append(wave.label)
        return fingerprint(wave)

    monkeypatch.setattr(retrieval.audio, "audio_sha256", counted)
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, [lib], progress=False, limits=limits)
        assert (report.added, report.retagged, report.moved, report.replaced) == (1, 1, 1, 0)
        assert [n for n in calls if n] == [1]  # the new file's PaSST alone
        now = c.get(clip.id)
        assert (now.location, now.name) == (str(renamed.resolve()), "harbour_dusk.wav")
        assert now.meta.field_dict["title"] == "Harbour at dusk" and now.audio_sha256 == clip.audio_sha256
    assert fingerprinted == ["harbour_dusk.wav"]  # not the new 9 s file's: its PaSST pass takes it


def test_what_the_user_set_survives_the_file_saying_otherwise_then_nothing_and_more_tags_than_a_clip_holds(
        tmp_path, settings, tone_retriever, monkeypatch):
    """The user's description, field and tag win over the file's, whatever the file says meanwhile: a retag
    that fills the same slots and a later one that clears them leave them as the user set them; a file with
    more keywords than a clip holds (MAX_USER_TAGS) cuts its own, not the user's; `index add` and
    `reread-metadata` answer alike."""
    from index.ingest.builder import index_paths
    from index.store.metadata import MAX_USER_TAGS

    lib = tmp_path / "lib"
    lib.mkdir()
    ogg = ffmpeg_sine(lib / "dog.ogg", "-c:a", "libvorbis")
    tag = need("vorbiscomment")
    run(tag, "-w", "-t", "TITLE=Dog", ogg)
    mine = Metadata.of(description="User dog text", tags=["wet"], fields={"genre": "Pets"})
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(ogg.resolve()))
        c.edit_metadata(clip.id, mine.over)
    run(tag, "-w", "-t", "TITLE=Dog", "-t", "DESCRIPTION=file dog text", "-t", "GENRE=Animals",
        "-t", "KEYWORDS=" + ";".join(f"k{i}" for i in range(40)), ogg)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        now = c.get(clip.id).meta
        assert now.description == "User dog text" and now.field_dict == {"genre": "Pets", "title": "Dog"}
        assert now.tags[0] == "wet" and len(now.tags) == MAX_USER_TAGS
        reread = reread_metadata(c, ledger=tmp_path / "ledger", progress=False)
        assert reread.changed == 0 and c.get(clip.id).meta == now  # the same rule
    run(tag, "-w", "-t", "TITLE=Dog", ogg)  # the file's own cleared again
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        assert c.get(clip.id).meta == mine.over(Metadata.of(fields={"title": "Dog"}))
        assert c.search_keywords("k3", 5) == [] and c.search_keywords("wet", 5)[0].record.id == clip.id


def test_what_the_user_set_stays_when_the_file_comes_to_say_the_same_and_then_drops_it(tmp_path, settings,
                                                                                     tone_retriever):
    """The user's values are kept as theirs (NewClip.meta_layers), not told from the file's by equality: a
    library tool that writes them into the file, and a later clean-up of the file's tags, leave them on."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "m5.flac", 555)
    mine = Metadata.of(description="my words", tags=["door"], fields={"library": "MyLib"})
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        c.edit_metadata(clip.id, lambda m: mine)
    metaflac = need("metaflac")
    run(metaflac, "--set-tag=DESCRIPTION=my words", "--set-tag=KEYWORDS=door", "--set-tag=LIBRARY=MyLib",
        flac)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        assert c.get(clip.id).meta == mine and c.get(clip.id).meta_layers.file == mine
    run(metaflac, "--remove-all-tags", flac)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        now = c.get(clip.id)
        assert now.meta == mine and now.meta_layers == MetaLayers(Metadata(), mine)
        assert reread_metadata(c, ledger=tmp_path / "ledger", progress=False).changed == 0


def test_a_form_sending_back_all_it_shows_leaves_the_files_values_the_files_and_what_it_took_off_stays_off(
        tmp_path, settings, tone_retriever):
    """The web page's edit form sends the description and every tag it shows: only what differs from the
    file becomes the user's, so a later retag still drops what the file drops. A file value taken off with
    PATCH stays off when the file is read again, unchanged (`reread-metadata --again`) or retagged while it
    still says it."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "p.flac", 660, "--set-tag=DESCRIPTION=fd1", "--set-tag=KEYWORDS=w1, w2")
    metaflac = need("metaflac")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        form = Metadata.of(description="fd1", tags=["w1", "w2", "mine"])  # all it shows, and one tag more
        c.edit_metadata(clip.id, lambda m: form)
        assert c.get(clip.id).meta_layers.own == Metadata.of(tags=["mine"])
        c.edit_metadata(clip.id, lambda m: Metadata.of(description="fd1", tags=["mine"]))  # w1, w2 off
        assert c.get(clip.id).meta.tags == ("mine",)
        assert c.get(clip.id).meta_layers.dropped == Metadata.of(tags=["w1", "w2"])
        report = reread_metadata(c, ledger=tmp_path / "ledger", again=True, progress=False)  # unchanged
        assert report.changed == 0 and c.get(clip.id).meta.tags == ("mine",)
    run(metaflac, "--remove-all-tags", "--set-tag=DESCRIPTION=fd2", "--set-tag=KEYWORDS=w2, w3", flac)
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        now = c.get(clip.id)
        assert (now.meta.description, now.meta.tags) == ("fd2", ("mine", "w3"))  # w2 still off, w3 new
        assert now.meta_layers.dropped == Metadata.of(tags=["w2"])  # w1 left the file: nothing to keep off


def test_a_clip_stored_before_the_layers_gets_the_same_answer_from_reread_and_index_add(tmp_path, settings,
                                                                                     tone_retriever):
    """Its file retagged: both read it as a file that changed, so the file's new tags and fields win over
    what the clip held (which may be the file's old ones), and what is not the file's now counts as the
    user's; a description the clip held, which may be one the user typed, is kept as theirs (never lost),
    said in the log, and given the file's the clip follows the file again."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "l.flac", 770, "--set-tag=DESCRIPTION=old desc", "--set-tag=KEYWORDS=t1, t2",
                       "--set-tag=TITLE=T")
    metaflac = need("metaflac")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False, metadata=lambda p: Metadata.of(tags=["usertag"]))
        [clip] = c.store.at_location(str(flac.resolve()))
        c.store.set_metadata(clip.id, clip.meta)  # stored before the layers were kept:
        con = c.store.db.connection()
        con.execute("UPDATE clips SET meta_layers = NULL WHERE id = ?", (clip.id,))
        con.commit()
        assert c.get(clip.id).meta_layers is None
    run(metaflac, "--remove-all-tags", "--set-tag=DESCRIPTION=new desc", "--set-tag=KEYWORDS=t1", flac)
    copy = tmp_path / "copy"
    shutil.copytree(settings.data_dir, copy)
    with open_collection(settings, tone_retriever) as c:
        reread_metadata(c, ledger=tmp_path / "ledger", progress=False)
        by_reread = c.get(clip.id)
    with open_collection(settings.model_copy(update={"data_dir": copy}), tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        by_add = c.get(clip.id)
    assert by_reread.meta == by_add.meta and by_reread.meta_layers == by_add.meta_layers
    assert by_add.meta.description == "old desc" == by_add.meta_layers.own.description
    assert by_add.meta_layers.file.description == "new desc" and by_add.meta_layers.file.tags == ("t1",)
    assert by_add.meta.same(by_add.meta_layers.meta) and "usertag" in by_add.meta_layers.own.tags
    with open_collection(settings.model_copy(update={"data_dir": copy}), tone_retriever) as c:
        followed = c.edit_metadata(clip.id, lambda m: replace(m, description="new desc"))
    assert followed.meta.description == "new desc" and followed.meta_layers.own.description == ""


def test_what_an_edit_takes_off_the_files_metadata_stays_off_until_the_file_says_otherwise(
        tmp_path, settings, tone_retriever, monkeypatch):
    """A keyword, a field and the description of the file's taken off with an edit stay off (clip and
    keyword search) through a reread, a retag and a re-edit of the audio (a new clip replaces the old one)
    while the file still says them; a field's new value and a new description show; an edit, or a run's
    own tags, give one back."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    lib.mkdir()
    ogg = ffmpeg_sine(lib / "storm.ogg", "-c:a", "libvorbis")
    tag = need("vorbiscomment")
    said = ["DESCRIPTION=Drizzle on a roof", "KEYWORDS=drizzle, roof", "ARTIST=Ana"]
    run(tag, "-w", *[a for t in said for a in ("-t", t)], ogg)
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(ogg.resolve()))
        assert clip.meta == Metadata.of(description="Drizzle on a roof", tags=["drizzle", "roof"],
                                        fields={"artist": "Ana"})
        c.edit_metadata(clip.id, lambda m: Metadata.of(tags=["roof"]))
        assert c.get(clip.id).meta == Metadata.of(tags=["roof"])
        assert c.get(clip.id).meta_layers.dropped == Metadata.of(description="Drizzle on a roof",
                                                                 tags=["drizzle"], fields={"artist": "Ana"})
        assert c.search_keywords("drizzle", 5) == []
        report = reread_metadata(c, ledger=tmp_path / "ledger", again=True, progress=False)
        assert report.changed == 0 and c.get(clip.id).meta == Metadata.of(tags=["roof"])
    run(tag, "-w", *[a for t in said + ["TITLE=Storm"] for a in ("-t", t)], ogg)  # retagged: a title more
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        assert c.get(clip.id).meta == Metadata.of(tags=["roof"], fields={"title": "Storm"})
    tmp = lib / "tmp.ogg"  # the audio re-edited: a new clip replaces it, what was taken off stays off
    run(need("ffmpeg"), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=880:duration=1", "-c:a",
        "libvorbis", tmp)
    run(tag, "-w", "-t", "DESCRIPTION=Heavy rain", "-t", "KEYWORDS=drizzle, roof", "-t", "ARTIST=Bo", tmp)
    os.replace(tmp, ogg)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).replaced == 1
        [now] = c.store.at_location(str(ogg.resolve()))
        assert now.id != clip.id
        assert now.meta == Metadata.of(description="Heavy rain", tags=["roof"], fields={"artist": "Bo"})
        assert now.meta_layers.dropped == Metadata.of(tags=["drizzle"])
        index_paths(c, [lib], progress=False, metadata=lambda p: Metadata.of(tags=["drizzle"]))  # given back
        back = c.get(now.id)
        assert set(back.meta.tags) == {"roof", "drizzle"} and back.meta_layers.dropped == Metadata()
        assert c.search_keywords("drizzle", 5)[0].record.id == now.id
        c.edit_metadata(now.id, lambda m: Metadata.of(description=m.description, tags=["drizzle"],
                                                      fields=m.field_dict))
        assert c.get(now.id).meta_layers.dropped == Metadata.of(tags=["roof"])
        c.edit_metadata(now.id, lambda m: Metadata.of(description=m.description, tags=["drizzle", "roof"],
                                                      fields=m.field_dict))  # an edit gives it back
        assert c.get(now.id).meta_layers.dropped == Metadata() and "roof" in c.get(now.id).meta.tags


def test_layers_after_an_edit_and_a_reread_by_hand():
    """MetaLayers.edited and .reread against values worked out by hand."""
    file = Metadata.of(description="fd", tags=["a", "b"], fields={"k": "1", "j": "2"})
    layers = MetaLayers(file, Metadata.of(tags=["mine"]))
    edited = layers.edited(Metadata.of(tags=["mine", "b"], fields={"k": "9"}))  # fd, a, j off; k the user's
    assert edited == MetaLayers(file, Metadata.of(tags=["mine"], fields={"k": "9"}),
                                Metadata.of(description="fd", tags=["a"], fields={"j": "2"}))
    assert edited.meta == Metadata.of(tags=["mine", "b"], fields={"k": "9"})
    found = Metadata.of(description="fd2", tags=["a", "c"], fields={"j": "2", "k": "1"})
    again = edited.reread(found, given=Metadata.of(fields={"j": "2"}))  # the run gives j back
    assert again == MetaLayers(found, Metadata.of(tags=["mine"], fields={"j": "2", "k": "9"}),
                               Metadata.of(tags=["a"]))  # fd2 is new, b left the file, j given
    assert again.meta == Metadata.of(description="fd2", tags=["mine", "c"], fields={"j": "2", "k": "9"})
    assert MetaLayers.from_json_text(again.to_json()) == again
    assert MetaLayers.from_json_text('{"file": {"tags": ["x"]}, "own": {}}') == MetaLayers(
        Metadata.of(tags=["x"]))  # stored before values taken off were kept


def test_a_clip_edited_before_what_an_edit_takes_off_was_kept_keeps_it_off_when_read_again(
        tmp_path, settings, tone_retriever):
    """Layers stored without `dropped`, and a clip's metadata that lacks a file value: what it lacks was taken
    off by an edit, and stays off when the file is read again."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "v7.flac", 990, "--set-tag=KEYWORDS=hiss, hum")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        c.store.set_metadata(clip.id, Metadata.of(tags=["hum"]))  # as an edit wrote it before
        assert c.get(clip.id).meta_layers == MetaLayers(Metadata.of(tags=["hiss", "hum"]))
        assert reread_metadata(c, ledger=tmp_path / "ledger", progress=False).changed == 0
        now = c.get(clip.id)
        assert now.meta.tags == ("hum",) and now.meta_layers.dropped == Metadata.of(tags=["hiss"])


def test_a_runs_values_on_an_unchanged_file_become_the_users_and_outlast_the_file_dropping_them(
        tmp_path, settings, tone_retriever):
    """`index add --tags/--fields` over a clip already indexed gives it the run's values as the user's: one
    the file also says (one taken off with an edit, given back) stays when the file drops or changes it."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "g.flac", 900, "--set-tag=KEYWORDS=gorbax; fivekw", "--set-tag=ARTIST=Xanthe")
    metaflac = need("metaflac")
    given = Metadata.of(tags=["gorbax"], fields={"artist": "Xanthe"})
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        c.edit_metadata(clip.id, lambda m: Metadata.of(tags=["fivekw"]))  # gorbax and the artist taken off
        report = index_paths(c, [lib], progress=False, metadata=lambda p: given)
        assert report.updated == 1 and set(c.get(clip.id).meta.tags) == {"gorbax", "fivekw"}
        assert c.get(clip.id).meta_layers.own == given and c.get(clip.id).meta_layers.dropped == Metadata()
        assert index_paths(c, [lib], progress=False, metadata=lambda p: given).updated == 0  # nothing new
    run(metaflac, "--remove-all-tags", "--set-tag=KEYWORDS=fivekw", "--set-tag=ARTIST=Other", flac)
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [lib], progress=False).retagged == 1
        now = c.get(clip.id).meta
        assert set(now.tags) == {"gorbax", "fivekw"} and now.field_dict == {"artist": "Xanthe"}


def test_file_keywords_past_what_a_clip_holds_are_not_taken_off_by_edits_or_runs(tmp_path, settings,
                                                                               tone_retriever):
    """A clip shows MAX_USER_TAGS tags; the file's cut by that bound were never shown, so neither an edit
    that sends back all it shows nor a run's tags takes them off: they show once there is room."""
    from index.ingest.builder import index_paths
    from index.store.metadata import MAX_USER_TAGS

    lib = tmp_path / "lib"
    keywords = [f"kw{i:02d}" for i in range(MAX_USER_TAGS)]
    flac = tagged_flac(lib / "many.flac", 950, "--set-tag=KEYWORDS=" + "; ".join(keywords))
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False, metadata=lambda p: Metadata.of(tags=["ownone", "owntwo"]))
        [clip] = c.store.at_location(str(flac.resolve()))
        shown = c.get(clip.id).meta
        assert len(shown.tags) == MAX_USER_TAGS and "kw31" not in shown.tags
        c.edit_metadata(clip.id, lambda m: shown)  # the form's Save with no change
        index_paths(c, [lib], progress=False, metadata=lambda p: Metadata.of(tags=["extra"]))
        assert c.get(clip.id).meta_layers.dropped == Metadata()
        c.edit_metadata(clip.id, lambda m: Metadata.of(description=m.description, fields=m.field_dict,
                                                       tags=[t for t in m.tags if t.startswith("kw")]))
        now = c.get(clip.id)  # the user's three tags taken off: room for all the file's
        assert now.meta_layers.own == now.meta_layers.dropped == Metadata()
        assert now.meta.tags == tuple(keywords)


def test_a_form_sending_back_a_crlf_description_leaves_it_the_files(tmp_path, settings, tone_retriever):
    """A file's description with CRLF line breaks, sent back by the web page's form with LF ones (a
    textarea's value), is the same text: it stays the file's, and the file's next description shows."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "cr.flac", 980, "--set-tag=DESCRIPTION=Line one\r\nLine two",
                       "--set-tag=KEYWORDS=crkw; crdrop")
    metaflac = need("metaflac")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        assert clip.meta.description == "Line one\nLine two"
        c.edit_metadata(clip.id, lambda m: Metadata.of(description="Line one\nLine two", tags=["crkw"]))
        assert c.get(clip.id).meta_layers.own == Metadata()
    run(metaflac, "--remove-all-tags", "--set-tag=DESCRIPTION=Totally new", "--set-tag=KEYWORDS=crkw; crdrop",
        flac)
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        now = c.get(clip.id).meta
        assert (now.description, now.tags) == ("Totally new", ("crkw",))


def test_a_clip_stored_with_a_crlf_description_reads_as_lf_and_a_reread_keeps_it_the_files(
        tmp_path, settings, tone_retriever):
    """Stored before line breaks were read as LF (the description column and its layers with CRLF): read
    back as LF, so a reread does not make the file's text the user's."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "old.flac", 985, "--set-tag=DESCRIPTION=Line one\r\nLine two")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        con = c.store.db.connection()
        con.execute("UPDATE clips SET description = ?, meta_layers = ? WHERE id = ?",
                    ("Line one\r\nLine two", '{"file": {"description": "Line one\\r\\nLine two"}, "own": {}}',
                     clip.id))
        con.commit()
        assert c.get(clip.id).meta.description == "Line one\nLine two"
        reread_metadata(c, ledger=tmp_path / "ledger", again=True, progress=False)
        assert c.get(clip.id).meta_layers == MetaLayers(Metadata.of(description="Line one\nLine two"))


def test_an_edit_keeps_the_tags_in_the_order_given_through_a_reread(tmp_path, settings, tone_retriever):
    """PATCH's tags, the file's among them, come back in the order sent, and a reread of the unchanged file
    leaves them so."""
    from index.ingest.builder import index_paths

    lib = tmp_path / "lib"
    flac = tagged_flac(lib / "order.flac", 975, "--set-tag=KEYWORDS=plinkor; zed")
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.store.at_location(str(flac.resolve()))
        sent = Metadata.of(tags=["drabble", "plinkor", "wibbleton"])
        assert c.edit_metadata(clip.id, lambda m: sent).meta.tags == ("drabble", "plinkor", "wibbleton")
        report = reread_metadata(c, ledger=tmp_path / "ledger", again=True, progress=False)
        assert report.changed == 0 and c.get(clip.id).meta.tags == ("drabble", "plinkor", "wibbleton")
        assert c.get(clip.id).meta_layers.dropped == Metadata.of(tags=["zed"])


def id3v23(*frames: tuple[bytes, bytes, bool | str]) -> bytes:
    """An ID3v2.3 tag of text frames (frame id, Latin-1 text, zlib-compressed or not, or "cut": its zlib
    stream cut in half)."""
    def frame(ident: bytes, text: bytes, compressed: bool | str) -> bytes:
        data = b"\x00" + text  # encoding byte: Latin-1
        if compressed:  # flag 0x0080, then the inflated size, then the zlib stream
            stream = zlib.compress(data, 9)
            stream = stream[:len(stream) // 2] if compressed == "cut" else stream
            body = struct.pack(">I", len(data)) + stream
            return ident + struct.pack(">I", len(body)) + b"\x00\x80" + body
        return ident + struct.pack(">I", len(data)) + b"\x00\x00" + data

    body = b"".join(frame(*f) for f in frames)
    synchsafe = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + synchsafe + body


def test_a_compressed_id3_frame_inflating_to_gigabytes_is_left_out_and_the_rest_read(tmp_path, caplog):
    """An ID3 frame may be zlib-compressed, and a frame of 64 KB inflates to 64 MiB (a real one in a 1 MB
    MP3: 1 GiB, 3 GB resident while its metadata was read). The tag's frames inflate to MAX_ID3_BYTES at
    most; the frame past it is left out with a warning, the others are read (a small compressed one too)."""
    import tracemalloc

    from index.ingest.tag_frames import MAX_ID3_BYTES

    mp3 = ffmpeg_sine(tmp_path / "base.mp3", "-c:a", "libmp3lame")
    bomb_text = b"A" * (64 << 20)
    assert len(bomb_text) > 2 * MAX_ID3_BYTES
    tag = id3v23((b"TIT2", bomb_text, True), (b"TALB", b"Castle Library", False),
                 (b"TCON", b"Doors", True), (b"TPE1", b"A recordist whose name is cut " * 20, "cut"))
    del bomb_text
    assert len(tag) < 1 << 20
    data = tag + mp3.read_bytes()
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING):
            meta = file_metadata(data, "bomb.mp3")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_ID3_BYTES, peak  # unbounded, the 64 MiB frame alone was held, and copied
    assert "title" not in meta.field_dict and "artist" not in meta.field_dict  # a stream cut short is junk
    assert meta.field_dict["library"] == "Castle Library" and meta.field_dict["genre"] == "Doors"
    assert "inflate past" in caplog.text


def info(**texts: bytes) -> bytes:
    """A RIFF LIST INFO chunk of these (ident: bytes) entries."""
    return chunk(b"LIST", b"INFO" + b"".join(chunk(ident.encode(), data) for ident, data in texts.items()))


def test_a_files_text_with_a_stray_control_is_read_cleaned_by_the_rule_the_service_refuses_by():
    """What PATCH refuses with 422 (a control character, a direction control; tests/app/test_metadata_text.py)
    a file's text loses; its line breaks of any kind are LF, as the service stores them; none is refused."""
    from index.store.names import checked_text, stored_text

    subject = "Door\x1b[0m slam\x01 \u202egnp.wav\x85second line\u2028third\x9b".encode()  # INFO ends at NUL
    meta = file_metadata(wav_with(info(ISBJ=subject, INAM="Gate\x07 \u2066Slam".encode(),
                                       IKEY="door\x1f; \u202eslam".encode()), seconds=0.1), "door.wav")
    assert meta.description == "Door [0m slam gnp.wav\nsecond line\nthird"  # ESC parts two words
    assert meta.field_dict["title"] == "Gate Slam" and meta.tags == ("door", "slam")
    assert stored_text(subject.decode(), lines=True) == meta.description
    with pytest.raises(ValueError, match="control character U\\+001B"):
        checked_text(subject.decode())


def test_a_files_decomposed_keywords_are_the_composed_ones_and_a_filter_of_either_finds_the_clip(
        tmp_path, settings, tone_retriever):
    """macOS writes text decomposed: a file's keyword `cafe\\u0301` is the tag `café` another file gives
    composed (one tag, once), a title decomposed is stored composed, and a keyword of 60 letters with spaces
    around it is kept whole (bounded as stored, as the service bounds a tag)."""
    from index.ingest.builder import index_paths
    from index.store.records import SearchFilter

    long_tag = "k" * 60
    keywords = f"cafe\u0301; caf\u00e9;   {long_tag}   ; CAFE\u0301".encode()
    data = wav_with(info(IKEY=keywords, INAM="Cafe\u0301 noise".encode()), seconds=0.1)
    meta = file_metadata(data, "cafe.wav")
    assert meta.tags == ("caf\u00e9", long_tag) and meta.field_dict["title"] == "Caf\u00e9 noise"
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cafe.wav").write_bytes(data)
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [lib], progress=False)
        [clip] = c.list(limit=5)
        assert clip.meta.tags == ("caf\u00e9", long_tag)
        for form in ("cafe\u0301", "caf\u00e9"):
            hits = c.search_text("noise", 5, SearchFilter(tags_any=(form,)))
            assert [h.record.id for h in hits] == [clip.id], form
