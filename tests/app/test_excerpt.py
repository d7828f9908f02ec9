"""GET /audio/{id}/file?start=S&end=E: a span of a clip as a WAV of its own. The oracle is soundfile's read
of the original file's frames round(S * rate) to round(E * rate)."""

import io
import math
import os

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.compose import store_config
from app.main import create_app
from index.store.records import NewClip, Tag
from index.stores import open_store
from tests.audio_fixtures import noise, sine, write

# (file name, rate, subtype, channels, seconds): a 16-bit WAV, a stereo 24-bit FLAC, a float WAV
SOURCES = (("field recording.wav", 44_100, "PCM_16", 1, 12.0), ("stereo.flac", 48_000, "PCM_24", 2, 6.0),
           ("float.wav", 22_050, "FLOAT", 1, 3.0))


@pytest.fixture
def client(app_settings, retriever, tmp_path):
    """The service over clips written straight into its store (no PaSST), each pointing at its file."""
    clips, paths = [], {}
    for i, (name, rate, subtype, channels, seconds) in enumerate(SOURCES):
        wave = sine(220.0 * (i + 1), seconds=seconds, rate=rate, channels=channels) + (
            noise(seconds=seconds, rate=rate, seed=i)[:, None] if channels > 1 else
            noise(seconds=seconds, rate=rate, seed=i))
        paths[name] = write(tmp_path / name, np.clip(wave, -1, 1), rate, subtype=subtype)
        clips.append(NewClip(name=name, location=str(paths[name]), sha256=f"{i + 1:064x}", duration=seconds,
                             sample_rate=rate, tags=(Tag("Sine wave", 0.5),)))
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((len(clips), retriever.spec.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    with open_store(store_config(app_settings), retriever.spec) as store:
        added = store.add_many(clips, xb, rng.standard_normal((len(clips), 527)))
    with TestClient(create_app(app_settings, retriever=retriever)) as c:
        c.ids = {a.record.name: a.record.id for a in added}  # type: ignore[attr-defined]
        c.paths = paths  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize(("name", "start", "end"), [("field recording.wav", 3.25, 7.5),
                                                    ("field recording.wav", 0.0, 12.0),
                                                    ("stereo.flac", 1.0001, 2.3333),
                                                    ("float.wav", 2.9, 3.0)])
def test_an_excerpt_is_the_span_of_the_file_at_its_own_rate(client, name, start, end):
    r = client.get(f"/audio/{client.ids[name]}/file", params={"start": start, "end": end})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    stem = name.rsplit(".", 1)[0]
    want_name = f"{stem}_{start:.3f}".rstrip("0").rstrip(".") + "-" + f"{end:.3f}".rstrip("0").rstrip(".")
    assert r.headers["content-disposition"] == f'inline; filename="{want_name}.wav"'
    info = sf.info(io.BytesIO(r.content))
    original = sf.info(str(client.paths[name]))
    assert (info.format, info.samplerate, info.channels) == ("WAV", original.samplerate, original.channels)
    assert abs(info.frames / info.samplerate - (end - start)) <= 1 / info.samplerate  # the header's duration
    exact = original.subtype == "PCM_16"
    assert info.subtype == ("PCM_16" if exact else "FLOAT")
    dtype = "int16" if exact else "float32"
    got, _ = sf.read(io.BytesIO(r.content), dtype=dtype, always_2d=True)
    rate = original.samplerate
    want, _ = sf.read(str(client.paths[name]), start=round(start * rate), stop=round(end * rate), dtype=dtype,
                      always_2d=True)
    np.testing.assert_array_equal(got, want)


def test_an_end_a_hair_past_the_last_frame_is_the_files_end(client):
    """A moment's end comes from the record's duration, measured at 32 kHz: a sample of that rate past."""
    name = "float.wav"
    r = client.get(f"/audio/{client.ids[name]}/file", params={"start": 2.5, "end": 3.0 + 1 / 32_000})
    assert r.status_code == 200, r.text
    want, _ = sf.read(str(client.paths[name]), start=round(2.5 * 22_050), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(sf.read(io.BytesIO(r.content), dtype="float32", always_2d=True)[0], want)
    assert r.headers["content-disposition"] == 'inline; filename="float_2.5-3.wav"'  # the span it holds


def test_without_a_span_the_whole_file_with_range_support(client):
    name = "field recording.wav"
    data = client.paths[name].read_bytes()
    url = f"/audio/{client.ids[name]}/file"
    assert client.get(url).content == data
    part = client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == data[:10]


@pytest.mark.parametrize(("params", "words"), [
    ({"start": 5, "end": 2}, "must come after"),
    ({"start": 3, "end": 3}, "must come after"),
    ({"start": 1, "end": 13}, "past the end of the clip (12 s)"),
    ({"start": 1, "end": 12.002}, "past the end of the clip (12 s)"),
    ({"start": 12.5, "end": 13}, "past the end"),
    ({"start": 0, "end": 1e308}, "past the end of the clip (12 s)"),  # no integer of frames: it was a 500
    ({"start": 1e308, "end": 1.5e308}, "past the end"),
    ({"start": -1, "end": 2}, "0 s or later"),
    ({"start": "nan", "end": 2}, "finite"),
    ({"start": 0, "end": "inf"}, "finite"),
    ({"start": 1}, "both `start` and `end`"),
    ({"end": 1}, "both `start` and `end`"),
    ({"start": 1, "end": 1.00001}, "shorter than one sample"),
])
def test_a_bad_span_is_400_with_what_is_wrong_and_changes_nothing(client, params, words):
    name = "field recording.wav"
    before = client.paths[name].read_bytes()
    listing = client.get("/audio").json()
    r = client.get(f"/audio/{client.ids[name]}/file", params=params)
    assert r.status_code == 400 and words in r.json()["detail"], r.text
    assert client.paths[name].read_bytes() == before and client.get("/audio").json() == listing


def test_a_malformed_number_is_422(client):
    r = client.get(f"/audio/{client.ids['float.wav']}/file", params={"start": "soon", "end": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "start"]


def test_an_unknown_clip_is_404(client):
    assert client.get("/audio/999/file", params={"start": 0, "end": 1}).status_code == 404


def test_openapi_documents_start_and_end(client):
    op = client.get("/openapi.json").json()["paths"]["/audio/{clip_id}/file"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    for name in ("start", "end"):
        assert params[name]["in"] == "query" and not params[name].get("required", False)
        assert "seconds" in params[name]["description"]
    assert "400" in op["responses"] and "excerpt" in op["description"].lower()


def test_the_excerpt_name_keeps_non_ascii_names(client, tmp_path):
    from app.excerpts import content_disposition, excerpt_name

    name = excerpt_name("pluie d'été.flac", 1.5, 2.0)
    assert name == "pluie d'été_1.5-2.wav"
    header = content_disposition(name)
    assert header == ("inline; filename=\"pluie d'_t__1.5-2.wav\"; "
                      "filename*=utf-8''pluie%20d%27%C3%A9t%C3%A9_1.5-2.wav")
    assert math.isclose(1.5, float(name.rsplit("_", 1)[1].split("-")[0]))


def test_the_excerpt_name_of_the_longest_clip_name_fits_a_file_system():
    from app.excerpts import MAX_FILE_NAME_BYTES, excerpt_name

    for name in ("a" * 255, "é" * 127 + ".wav", "日本" * 42 + ".flac"):  # names at the 255-character cap
        got = excerpt_name(name, 3599.125, 3725.5)
        assert len(got.encode()) <= MAX_FILE_NAME_BYTES and got.endswith("_3599.125-3725.5.wav"), name
        assert name.startswith(got.rsplit("_", 1)[0])  # the name cut, never a character split


@pytest.mark.parametrize("name", ["field recording.wav", "stereo.flac"])
def test_a_long_span_is_read_and_sent_a_block_at_a_time(client, name, monkeypatch):
    """Blocks of 1,000 frames (a span of many): the same WAV as one read of the span."""
    from app import excerpts

    monkeypatch.setattr(excerpts, "BLOCK_FRAMES", 1000)
    monkeypatch.setattr(excerpts, "SEND_BYTES", 4096)
    rate = sf.info(str(client.paths[name])).samplerate
    r = client.get(f"/audio/{client.ids[name]}/file", params={"start": 0.5, "end": 5.25})
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    dtype = "int16" if name.endswith(".wav") else "float32"
    want, _ = sf.read(str(client.paths[name]), start=round(0.5 * rate), stop=round(5.25 * rate), dtype=dtype,
                      always_2d=True)
    np.testing.assert_array_equal(sf.read(io.BytesIO(r.content), dtype=dtype, always_2d=True)[0], want)


def test_a_span_past_what_a_wav_holds_is_400(client, monkeypatch):
    from app import excerpts

    monkeypatch.setattr(excerpts, "MAX_WAV_DATA", 44_100 * 2 * 4)  # 4 s of 16-bit mono at 44.1 kHz
    url = f"/audio/{client.ids['field recording.wav']}/file"
    assert client.get(url, params={"start": 0, "end": 4}).status_code == 200
    r = client.get(url, params={"start": 0, "end": 4.5})
    assert r.status_code == 400 and "more than a WAV holds" in r.json()["detail"]


def test_head_answers_the_headers_of_the_file_and_of_an_excerpt(client):
    """What a player, a DAW or a monitor asks first: the GET's status and headers, no body."""
    url = f"/audio/{client.ids['field recording.wav']}/file"
    for params in ({}, {"start": 1.0, "end": 2.5}):
        got, head = client.get(url, params=params), client.head(url, params=params)
        assert head.status_code == 200 and head.content == b""
        for header in ("content-type", "content-length", "content-disposition"):
            assert head.headers[header] == got.headers[header], header
    assert client.head("/audio/999/file").status_code == 404
    assert client.head("/health/live").status_code == 200 and client.head("/").status_code == 200
    assert "head" not in client.get("/openapi.json").json()["paths"][url.replace(
        str(client.ids["field recording.wav"]), "{clip_id}")]


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=abc", "pages=0-1", "items=0-5", "bytes=-", "bytes=",
                                    "0-9", "bytes=0-9,5-2", "bytes=,", "bytes= , ,", "bytes=0-9,,x"])
def test_a_range_header_that_is_not_byte_ranges_is_ignored(client, header):
    """RFC 9110 14.2: a range unit the server does not know MUST be ignored, an invalid set may be: the
    whole file, as without the header (it was a 400)."""
    name = "field recording.wav"
    r = client.get(f"/audio/{client.ids[name]}/file", headers={"Range": header})
    assert r.status_code == 200 and r.content == client.paths[name].read_bytes(), r.text
    assert "content-range" not in r.headers


def test_a_client_holding_the_file_gets_304(client):
    """If-None-Match (weak comparison, a list, *) and, without it, If-Modified-Since: 304 with the
    validators and no body; a changed file, an older date or another tag gets the file."""
    name = "field recording.wav"
    url = f"/audio/{client.ids[name]}/file"
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": modified}, {"If-None-Match": etag, "Range": "bytes=0-9"}):
        r = client.get(url, headers=headers)
        assert r.status_code == 304 and r.content == b"", headers
        assert r.headers["etag"] == etag and r.headers["last-modified"] == modified
        assert client.head(url, headers=headers).status_code == 304
    for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
                    {"If-None-Match": '"other"', "If-Modified-Since": modified},
                    {"If-Modified-Since": "not a date"}):
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and r.content == first.content, headers
    path = client.paths[name]
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))  # the file written again
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag


def test_a_client_naming_another_version_of_the_file_gets_412(client):
    """If-Match (strong comparison, a list, *) or, without it, If-Unmodified-Since: 412 when the file is not
    the version named (they were ignored: the whole file, whatever its version); the file otherwise."""
    name = "field recording.wav"
    url = f"/audio/{client.ids[name]}/file"
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"If-Match": '"other"'}, {"If-Match": f"W/{etag}"},
                    {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
                    {"If-Match": '"other"', "If-Unmodified-Since": modified}):
        r = client.get(url, headers=headers)
        assert r.status_code == 412 and "no longer the version" in r.json()["detail"], headers
        assert client.head(url, headers=headers).status_code == 412
    for headers in ({"If-Match": etag}, {"If-Match": f'"other", {etag}'}, {"If-Match": "*"},
                    {"If-Unmodified-Since": modified}, {"If-Unmodified-Since": "not a date"},
                    {"If-Match": etag, "Range": "bytes=0-9"}):
        r = client.get(url, headers=headers)
        assert r.status_code in (200, 206) and first.content.startswith(r.content), headers


PAST_THE_END = "bytes=999999999-"


def test_preconditions_are_evaluated_before_the_range(client):
    """RFC 9110 13.2.2: If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304)
    come before the Range, so a range past the end of the file does not hide them (it answered 416)."""
    url = f"/audio/{client.ids['field recording.wav']}/file"
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers, status in (({"If-Match": '"other"'}, 412),
                            ({"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 412),
                            ({"If-None-Match": etag}, 304), ({"If-Modified-Since": modified}, 304)):
        r = client.get(url, headers={**headers, "Range": PAST_THE_END})
        assert r.status_code == status and "content-range" not in r.headers, (headers, r.text)
        assert client.head(url, headers={**headers, "Range": PAST_THE_END}).status_code == status
    past = client.get(url, headers={"If-Match": etag, "Range": PAST_THE_END})  # the preconditions hold
    size = len(first.content)
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert "past the end of the file" in past.json()["detail"]


def test_a_head_answered_412_carries_the_headers_of_the_gets_412(client):
    """What a client asks first with HEAD is answered as its GET would be: the same status and headers,
    no body."""
    url = f"/audio/{client.ids['field recording.wav']}/file"
    for headers in ({"If-Match": '"other"'}, {"If-Match": '"other"', "Range": PAST_THE_END},
                    {"Range": PAST_THE_END}):
        got, head = client.get(url, headers=headers), client.head(url, headers=headers)
        assert head.status_code == got.status_code in (412, 416) and head.content == b"", headers
        assert dict(head.headers) == dict(got.headers), headers


def test_a_range_whose_if_range_names_another_version_gets_the_whole_file(client):
    """RFC 9110 13.1.5: an If-Range that is not the file's strong ETag means the client's part may be of
    another version: the Range is ignored (a range past the end was 416), the whole file sent. A date is not
    trusted, even the file's own Last-Modified (a file written again within the second keeps it)."""
    name = "field recording.wav"
    url = f"/audio/{client.ids[name]}/file"
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for if_range in ('"other"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT", modified):
        for byte_range in (PAST_THE_END, "bytes=0-9"):
            r = client.get(url, headers={"If-Range": if_range, "Range": byte_range})
            assert r.status_code == 200 and r.content == first.content, (if_range, byte_range)
    r = client.get(url, headers={"If-Range": etag, "Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == first.content[:10]
    assert client.get(url, headers={"If-Range": etag, "Range": PAST_THE_END}).status_code == 416


def test_http_dates_are_read_as_gmt_in_all_three_forms(monkeypatch):
    """RFC 9110 5.6.7: asctime names no zone and was read in the server's local one (a stale copy got 304
    east of it, a fresh one was sent again west of it)."""
    import time

    from app.stored_file import http_date

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        want = 1_764_928_437.0  # Fri, 05 Dec 2025 09:53:57 GMT
        for text in ("Fri, 05 Dec 2025 09:53:57 GMT", "Friday, 05-Dec-25 09:53:57 GMT",
                     "Fri Dec  5 09:53:57 2025"):
            assert http_date(text) == want, text
        assert http_date("not a date") is None
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


RANGES = [("bytes=0-9", 206), ("bytes = 0 - 9", 206), ("bytes=10-", 206), ("bytes=-10", 206),
          ("bytes=0-1,4-5", 206), (PAST_THE_END, 416)]


@pytest.mark.parametrize(("header", "status"), RANGES)
def test_byte_ranges_are_served_as_before(client, header, status):
    url = f"/audio/{client.ids['field recording.wav']}/file"
    assert client.get(url, headers={"Range": header}).status_code == status


@pytest.mark.parametrize("header", ["bytes=0-9,", "bytes=0-9,,", "bytes=,0-9", "bytes= , 0-9 , ,"])
def test_empty_elements_of_a_range_list_are_skipped(client, header):
    """RFC 9110 5.6.1.2: a recipient MUST accept empty list elements; `bytes=0-9,` was taken for a header
    that is not byte ranges and ignored (200, the whole file). The oracle is the file's first ten bytes."""
    path = client.paths["field recording.wav"]
    r = client.get(f"/audio/{client.ids['field recording.wav']}/file", headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.content == path.read_bytes()[:10]
    assert r.headers["content-range"] == f"bytes 0-9/{path.stat().st_size}"


def test_a_span_in_the_last_page_of_an_ogg_vorbis_file_is_its_frames(tmp_path):
    """libsndfile's seek into an Ogg Vorbis file's last page lands late by the encoder's end trimming (52
    frames in ffmpeg's files), so an excerpt there was shifted and ended with frames past the audio. The
    oracle is soundfile's read of the whole file, from its start."""
    from app.excerpts import read_excerpt
    from retrieval.ogg_pages import last_page_start
    from tests.audio_fixtures import encode

    path = encode(tmp_path / "wind.ogg", "-c:a", "libvorbis", "-q:a", "0", seconds=3, freq=330)
    whole, rate = sf.read(str(path), dtype="float32", always_2d=True)
    last = last_page_start(path)
    assert last is not None and 0 < last < len(whole) - rate // 10  # a last page of more than 0.1 s
    for first in (last - 5, last, last + 1, (last + len(whole)) // 2, len(whole) - 100):
        excerpt = read_excerpt(path, "wind.ogg", first / rate, len(whole) / rate)
        with excerpt.file:
            got, got_rate = sf.read(excerpt.file, dtype="float32", always_2d=True)
        assert got_rate == rate
        np.testing.assert_array_equal(got, whole[first:], err_msg=f"from frame {first}")


def test_a_span_of_a_vbr_mp3_is_its_frames(tmp_path):
    """A VBR MP3's seek is not exact (libmpg123), so an excerpt's start landed off and every block after
    the first began off again: the span is decoded from the file's start. The oracle is libsndfile's read
    of the whole file in one call."""
    from app.excerpts import read_excerpt
    from tests.retrieval.test_audio import vbr_mp3

    path = vbr_mp3(tmp_path)
    whole, rate = sf.read(str(path), dtype="float32", always_2d=True)
    for start, end in ((0.0, 2.0), (7.3, 12.1), (1.5, 19.9)):  # the last spans several read blocks
        excerpt = read_excerpt(path, "sweep.mp3", start, end)
        with excerpt.file:
            got, got_rate = sf.read(excerpt.file, dtype="float32", always_2d=True)
        assert got_rate == rate
        np.testing.assert_array_equal(got, whole[round(start * rate):round(end * rate)], err_msg=f"{start}")
