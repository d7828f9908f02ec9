"""POST/GET/DELETE /audio: records, dedup, streaming with Range, and the 4xx answers."""

import pytest

from retrieval.audio import decode_audio
from retrieval.errors import AudioDecodeError
from tests.app.conftest import API_KEY, CLIPS, WRITE, metric_samples, sha256, upload, wav_bytes
from tests.audio_fixtures import joined_mp3, sine


def test_upload_returns_the_record_with_its_top_tags(client, retriever):
    data = CLIPS["sine.wav"]
    r = upload(client, "sine.wav", data)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["name"] == "sine.wav" and rec["sha256"] == sha256(data) and rec["sample_rate"] == 32_000
    assert rec["duration"] == pytest.approx(1.0, abs=1e-3)
    assert rec["audio_url"] == f"/audio/{rec['id']}/file"
    # oracle: the library's own top tags of the same samples
    _, logits = retriever.encode_audio(decode_audio(data).wave)
    expected = retriever.top_tags(logits, len(rec["tags"]))
    assert rec["tags"] and [t["label"] for t in rec["tags"]] == [label for label, _ in expected]
    assert [t["probability"] for t in rec["tags"]] == pytest.approx([p for _, p in expected], abs=1e-5)
    assert client.get(f"/audio/{rec['id']}").json() == rec


def test_same_content_again_answers_the_existing_record_with_200(client):
    first = upload(client, "a.wav", CLIPS["sine.wav"]).json()
    again = upload(client, "b.wav", CLIPS["sine.wav"])
    assert again.status_code == 200 and again.json() == first
    assert again.headers["location"] == f"/audio/{first['id']}"  # as a 201 says where the clip is
    assert client.get("/audio").json()["total"] == 1


def test_name_field_and_path_components(client):
    assert upload(client, "x.wav", CLIPS["sine.wav"], name="my tone.wav").json()["name"] == "my tone.wav"
    assert upload(client, "../../etc/clicks.wav", CLIPS["clicks.wav"]).json()["name"] == "clicks.wav"
    assert upload(client, "x.wav", CLIPS["noise.wav"], name="C:\\sounds\\n.wav").json()["name"] == "n.wav"


def test_bearer_token_is_accepted(client):
    r = upload(client, "s.wav", CLIPS["sine.wav"], headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["name"] == "s.wav" and rec["sha256"] == sha256(CLIPS["sine.wav"])
    assert client.get(f"/audio/{rec['id']}").json() == rec


@pytest.mark.parametrize(("headers", "status", "message"), [
    ({}, 401, "an API key is required"),
    ({"X-API-Key": "wrong"}, 403, "the API key is not valid"),
    ({"Authorization": "Bearer wrong"}, 403, "the API key is not valid"),
    ({"Authorization": f"Basic {API_KEY}"}, 401, "an API key is required"),
])
def test_writes_without_the_right_key_are_refused_and_change_nothing(client, headers, status, message):
    r = upload(client, "s.wav", CLIPS["sine.wav"], headers=headers)
    assert r.status_code == status and r.json()["detail"].startswith(message)
    assert client.get("/audio").json()["total"] == 0


def test_writes_are_refused_without_a_configured_key(make_client):
    client = make_client(api_key=None)
    for r in (upload(client, "s.wav", CLIPS["sine.wav"], headers={"X-API-Key": "anything"}),
              client.delete("/audio/1", headers={"X-API-Key": "anything"})):
        assert r.status_code == 403 and "set RETRIEVAL_API_KEY" in r.json()["detail"]


def test_declared_body_over_the_limit_is_413(make_client):
    client = make_client(max_upload_bytes=20_000)
    big = wav_bytes(sine(seconds=1.0))  # 64 kB
    r = upload(client, "big.wav", big)
    assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
    assert client.get("/audio").json()["total"] == 0
    # answered before anything is routed or read: a route that never reads its body, or one that reads it
    # while it answers (a file), is refused all the same
    for method, path in (("DELETE", "/audio/1"), ("GET", "/audio/1/file"), ("POST", "/nowhere")):
        r = client.request(method, path, headers={**WRITE, "Content-Length": str(10**12)}, content=b"")
        assert r.status_code == 413, (method, path, r.status_code)
    counted = ("retrieval_http_request_duration_seconds_count",
               (("method", "POST"), ("route", "unmatched"), ("status", "413")))
    assert metric_samples(client)[counted] == 2  # no route took them (docs/search-api.md, /metrics)


def multipart_chunks(name: str, data: bytes, boundary: str = "b0undary", chunk: int = 4096):
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    chunks = (body[i:i + chunk] for i in range(0, len(body), chunk))
    return chunks, f"multipart/form-data; boundary={boundary}"


def test_streamed_body_over_the_limit_is_413(make_client):
    """No Content-Length (chunked): the bytes are counted as they arrive."""
    client = make_client(max_upload_bytes=20_000)
    chunks, content_type = multipart_chunks("big.wav", wav_bytes(sine(seconds=1.0)))
    r = client.post("/audio", content=chunks, headers={**WRITE, "Content-Type": content_type})
    assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
    assert client.get("/audio").json()["total"] == 0


def test_streamed_body_under_the_limit_is_added(client):
    chunks, content_type = multipart_chunks("s.wav", CLIPS["sine.wav"])
    r = client.post("/audio", content=chunks, headers={**WRITE, "Content-Type": content_type},
                    params={"wait": 60})  # waits for the ingest queue to index it
    assert r.status_code == 201 and r.json()["sha256"] == sha256(CLIPS["sine.wav"])


def test_clip_over_the_duration_limit_is_413(make_client):
    client = make_client(max_duration_s=1.0)
    r = upload(client, "long.wav", wav_bytes(sine(seconds=1.5)))
    assert r.status_code == 413 and "longer than the maximum of 1 s" in r.json()["detail"]
    assert client.get("/audio").json()["total"] == 0


@pytest.mark.parametrize("data", [b"this is not audio", CLIPS["sine.wav"][:200], b"RIFF\0\0\0\0WAVE"])
def test_undecodable_upload_is_415_with_the_decoders_message(client, data):
    r = upload(client, "bad.wav", data)
    assert r.status_code == 415
    with pytest.raises(AudioDecodeError) as decoder:
        decode_audio(data, name="bad.wav")
    assert r.json()["detail"] == str(decoder.value)
    assert client.get("/audio").json()["total"] == 0


def test_an_mp3_the_decoder_would_cut_short_is_refused_whole(make_client, tmp_path):
    """Its frames hold 21 s, its header 3 s: 415 within the limit, 413 past it (by the frames' length)."""
    data = joined_mp3(tmp_path).read_bytes()
    r = upload(make_client(), "joined.mp3", data)
    assert r.status_code == 415 and "its frames hold 21." in r.json()["detail"]
    r = upload(make_client(max_duration_s=10.0), "joined.mp3", data)
    assert r.status_code == 413 and "counted by its frames" in r.json()["detail"]
    assert make_client().get("/audio").json()["total"] == 0


def test_upload_without_a_file_is_422(client):
    assert client.post("/audio", data={"name": "x"}, headers=WRITE).status_code == 422
    assert client.post("/audio", json={"file": "x"}, headers=WRITE).status_code == 422
    r = client.post("/audio", content=b"--x\r\nbroken", headers={**WRITE, "Content-Type":
                                                                 "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 422)
    whole = wav_bytes(sine(seconds=0.2))
    cut = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
           b"Content-Type: audio/wav\r\n\r\n" + whole[:len(whole) // 2])  # no closing boundary
    r = client.post("/audio", content=cut, headers={**WRITE,
                                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 422) and "closing boundary" in r.text
    assert client.get("/audio").json()["total"] == 0
    twice = client.post("/audio", files=[("file", ("a.wav", whole, "audio/wav"))], headers=WRITE,
                        data={"description": ["one", "two"]})
    assert twice.status_code == 422 and "'description' is sent more than once" in twice.text
    assert client.get("/audio").json()["total"] == 0


def test_list_pages_in_id_order(filled):
    client, records = filled
    ids = sorted(rec["id"] for rec in records.values())
    page = client.get("/audio", params={"offset": 1, "limit": 1}).json()
    assert page["total"] == 3 and page["offset"] == 1 and page["limit"] == 1
    assert [c["id"] for c in page["items"]] == [ids[1]]
    assert [c["id"] for c in client.get("/audio").json()["items"]] == ids
    assert client.get("/audio", params={"offset": 10}).json()["items"] == []
    assert client.get("/audio", params={"limit": 0}).status_code == 422
    assert client.get("/audio", params={"offset": -1}).status_code == 422


def test_get_unknown_or_malformed_id(client):
    r = client.get("/audio/12345")
    assert r.status_code == 404 and r.json()["detail"] == "no clip with id 12345"
    assert client.get("/audio/abc").status_code == 422
    assert client.get("/audio/12345/file").status_code == 404


def test_file_streams_the_stored_bytes_with_range_support(filled):
    client, records = filled
    data, rec = CLIPS["clicks.wav"], records["clicks.wav"]
    url, n = rec["audio_url"], len(data)
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{n}"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    for past in (f"bytes={n}-", f"bytes={n}-{n + 10}", "bytes=-0", f"bytes={n + 5}-, -0"):
        bad = client.get(url, headers={"Range": past})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{n}", past
        assert f"past the end of the file ({n} bytes)" in bad.json()["detail"]
    last = client.get(url, headers={"Range": f"bytes={n - 1}-{n + 100}"})  # an end past it: cut
    assert last.status_code == 206 and last.content == data[-1:]
    for some in (f"bytes=0-1, {n + 5}-", "bytes=0-1,-0", f"bytes={n}-{n + 9},0-1"):  # satisfiable: one is
        part = client.get(url, headers={"Range": some})
        assert part.status_code == 206 and part.content == data[:2], some
        assert part.headers["content-range"] == f"bytes 0-1/{n}"


def test_a_whole_file_download_names_the_clip_for_every_client(client):
    rec = upload(client, "café ünï 日本.wav", wav_bytes(sine(seconds=0.2))).json()
    got = client.head(rec["audio_url"]).headers["content-disposition"]
    assert got == ("inline; filename=\"caf_ _n_ __.wav\"; "
                   "filename*=utf-8''caf%C3%A9%20%C3%BCn%C3%AF%20%E6%97%A5%E6%9C%AC.wav")  # and ASCII


@pytest.mark.parametrize(("name", "fmt", "served"), [
    ("Tone one", "WAV", "Tone one.wav"),  # no suffix: its container's added
    ("take.wav", "FLAC", "take.flac"),  # another container's: replaced
    ("take.FLAC", "FLAC", "take.FLAC"),  # its own, in any case: kept
    ("field.rec.bwf", "WAV", "field.rec.bwf"),
    ("notes.txt", "FLAC", "notes.txt.flac"),
    ("..", "WAV", "upload.bin.wav"),  # no name: the file's
    ("x" * 300 + ".wav", "WAV", "x" * 251 + ".wav"),  # a file system's 255 bytes
])
def test_a_whole_file_is_named_for_its_container(client, name, fmt, served):
    """Saved by a browser or `curl -OJ`, the file opens in the program its name says."""
    data = wav_bytes(sine(seconds=0.2), fmt=fmt)
    rec = upload(client, "upload.bin", data, name=name).json()
    got = client.head(rec["audio_url"]).headers["content-disposition"]
    assert got == f'inline; filename="{served}"', (rec["name"], got)


def test_file_content_type_follows_the_format(client):
    flac = wav_bytes(sine(seconds=0.5), fmt="FLAC")
    rec = upload(client, "tone.flac", flac).json()
    r = client.get(rec["audio_url"])
    assert r.headers["content-type"] == "audio/flac" and r.content == flac


@pytest.mark.parametrize(("fmt", "media_type", "suffix"), [("AIFF", "audio/aiff", ".aiff"),
                                                           ("CAF", "audio/x-caf", ".caf"),
                                                           ("AU", "audio/basic", ".au"),
                                                           ("W64", "audio/x-w64", ".w64")])
def test_other_containers_are_served_as_what_they_are(client, fmt, media_type, suffix):
    """AIFF, CAF, AU and W64 decode and index; they were served (and dragged out) as octet-stream."""
    data = wav_bytes(sine(330.0 + len(fmt), seconds=0.5), fmt=fmt)
    rec = upload(client, "take", data).json()
    r = client.get(rec["audio_url"])
    assert r.headers["content-type"] == media_type and r.content == data
    assert r.headers["content-disposition"] == f'inline; filename="take{suffix}"'
    hit = next(h for h in client.post("/search", json={"query": "tone", "k": 10}).json()["results"]
               if h["id"] == rec["id"])
    assert (hit["file_type"], hit["file_name"]) == (media_type, f"take{suffix}")


def test_delete(filled):
    client, records = filled
    clip_id = records["sine.wav"]["id"]
    assert client.delete(f"/audio/{clip_id}").status_code == 401
    assert client.delete(f"/audio/{clip_id}", headers={"X-API-Key": "no"}).status_code == 403
    assert client.get(f"/audio/{clip_id}").status_code == 200
    assert client.delete(f"/audio/{clip_id}", headers=WRITE).status_code == 204
    assert client.get(f"/audio/{clip_id}").status_code == 404
    assert client.get(f"/audio/{clip_id}/file").status_code == 404
    assert client.delete(f"/audio/{clip_id}", headers=WRITE).status_code == 404
    hits = client.post("/search", json={"query": "tone", "k": 10}).json()["results"]
    assert clip_id not in {h["id"] for h in hits} and len(hits) == 2


def test_protected_reads_need_the_key(make_client):
    client = make_client(protect_reads=True)
    assert client.post("/search", json={"query": "rain"}).status_code == 401
    assert client.get("/audio", headers={"X-API-Key": "no"}).status_code == 403
    assert client.get("/audio/1/file").status_code == 401
    assert client.post("/search/audio", files={"file": ("x.wav", CLIPS["sine.wav"])}).status_code == 401
    assert client.post("/search", json={"query": "rain"}, headers=WRITE).status_code == 200
    assert client.get("/audio", headers=WRITE).status_code == 200
    assert client.get("/health/ready").status_code == 200  # probes stay open


@pytest.mark.parametrize("protect_reads", [False, True])
def test_the_access_probe_says_what_the_key_sent_may_do(make_client, protect_reads):
    """GET /health/access never refuses: it says whether the key is this server's (either header)."""
    client = make_client(protect_reads=protect_reads)
    open_reads = not protect_reads
    for headers, want in ((WRITE, ("valid", True, True)),
                          ({"Authorization": f"Bearer {WRITE['X-API-Key']}"}, ("valid", True, True)),
                          ({"X-API-Key": "no"}, ("wrong", False, open_reads)),
                          ({}, ("missing", False, open_reads))):
        answer = client.get("/health/access", headers=headers)
        assert answer.status_code == 200
        assert (answer.json()["key"], answer.json()["writes"], answer.json()["reads"]) == want
    unconfigured = make_client(api_key=None).get("/health/access", headers=WRITE).json()
    assert unconfigured == {"key": "unconfigured", "writes": False, "reads": True}
    security = client.get("/openapi.json").json()["paths"]["/health/access"]["get"]["security"]
    assert {} in security and len(security) == 3  # either header, or none: a key is optional here


def test_protected_reads_hand_out_signed_audio_links(make_client, monkeypatch):
    """With protected reads, the audio URLs a search answers read that clip's audio without the key (a
    player, a DAW given the link) until they expire; a changed, moved or expired link needs the key."""
    from app import security

    client = make_client(protect_reads=True)
    for name in ("sine.wav", "clicks.wav"):
        assert upload(client, name, CLIPS[name]).status_code == 201
    hits = client.post("/search", json={"query": "a tone", "k": 3}, headers=WRITE).json()["results"]
    first, second = hits[0], hits[1]
    url = first["audio_url"]
    assert url.startswith(f"/audio/{first['id']}/file?expires=") and "&token=" in url
    assert client.get(url).status_code == 200
    assert client.get(url, headers={"Range": "bytes=0-99"}).status_code == 206  # streams, as a player asks
    if first["segment"] is not None:
        excerpt = client.get(first["segment"]["excerpt_url"])
        assert excerpt.status_code == 200 and first["segment"]["excerpt_name"] in excerpt.headers[
            "content-disposition"]
    query = url.split("?", 1)[1]
    moved = client.get(f"/audio/{second['id']}/file?{query}")  # another clip's path
    assert moved.status_code == 401 and "not valid for this address" in moved.json()["detail"]
    assert client.get(url[:-1] + ("0" if url[-1] != "0" else "1")).status_code == 401  # a changed token
    expires = int(query.split("&")[0].split("=")[1])
    assert client.get(url.replace(f"expires={expires}", f"expires={expires + 1}")).status_code == 401
    for odd in ("%C2%B2", "9" * 5000):  # a superscript digit, more digits than int() reads: refused, not 500
        r = client.get(f"/audio/{first['id']}/file?expires={odd}&token=x")
        assert r.status_code == 401 and "incomplete" in r.json()["detail"]
    token = query.split("token=")[1]
    assert client.get("/audio", params={"expires": expires, "token": token}).status_code == 401  # elsewhere
    monkeypatch.setattr(security.time, "time", lambda: expires + 1.0)  # past its time
    late = client.get(url)
    assert late.status_code == 401 and "this signed link has expired" in late.json()["detail"]
    assert client.get(url, headers=WRITE).status_code == 200  # the key still reads it
    open_client = make_client()  # reads open: plain URLs
    assert open_client.post("/search", json={"query": "a tone", "k": 1}).json()["results"][0][
        "audio_url"] == f"/audio/{first['id']}/file"


def test_a_signed_links_lifetime_is_the_setting(make_client, monkeypatch):
    from app import security

    monkeypatch.setattr(security.time, "time", lambda: 1_000_000.0)
    client = make_client(protect_reads=True, link_ttl_s=120)
    assert upload(client, "sine.wav", CLIPS["sine.wav"]).status_code == 201
    url = client.post("/search", json={"query": "a tone", "k": 1}, headers=WRITE).json()["results"][0][
        "audio_url"]
    assert "expires=1000120&" in url and client.get(url).status_code == 200
    monkeypatch.setattr(security.time, "time", lambda: 1_000_121.0)
    assert client.get(url).status_code == 401


def test_a_body_that_is_not_json_is_judged_after_the_key(make_client):
    """FastAPI parses a JSON body before a route's dependencies: a caller without the key was told its JSON
    was broken (422) before it was told it may not edit (401)."""
    client = make_client(protect_reads=True)
    broken = {"content": b'{"description":', "headers": {"Content-Type": "application/json"}}
    for method, path in (("PATCH", "/audio/1"), ("POST", "/search")):
        r = client.request(method, path, **broken)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, r.text)
        r = client.request(method, path, content=broken["content"],
                           headers={**broken["headers"], "X-API-Key": "wrong"})
        assert r.status_code == 403, (path, r.text)
        r = client.request(method, path, content=broken["content"], headers={**broken["headers"], **WRITE})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", (path, r.text)


def test_a_json_body_that_is_not_utf8_is_said_so(client):
    """A Latin-1 body was answered 400 "There was an error parsing the body", which names nothing."""
    r = client.post("/search", content='{"query": "café"}'.encode("latin-1"),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"].startswith("the body is not UTF-8 text")
