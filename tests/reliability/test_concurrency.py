"""20 clients searching while 5 upload, bounded in count and time: no 5xx, nothing timed out, every
acknowledged upload found afterwards; the same bytes sent at once are stored once."""

import threading
from itertools import islice

import pytest

from benchmarks.load import distinct_tones, errors_of, format_summary, run_load, summary
from tests.audio_fixtures import noise
from tests.reliability.bad_inputs import audio_bytes
from tests.reliability.http_checks import assert_clip_present, sha256, snapshot, upload

SEARCHERS, UPLOADERS, UPLOADS_EACH = 20, 5, 3
HARD_BOUND_S = 300  # only a guard against a hang; the uploads end far sooner


def tones(i: int):
    return islice(distinct_tones(100 - UPLOADERS + i), UPLOADS_EACH)  # bands no other test uses


def test_searches_and_uploads_at_once(server):
    with server.client() as client:
        before = snapshot(server, client)
    report = run_load(server.url, searchers=SEARCHERS, duration_s=HARD_BOUND_S, uploaders=UPLOADERS,
                      api_key=server.api_key, uploads=tones)
    print(f"\n{SEARCHERS} searchers + {UPLOADERS} uploaders on the live server:\n{format_summary(report)}")
    uploads, searches = report.of("upload"), report.of("search")
    assert len(uploads) == UPLOADERS * UPLOADS_EACH  # every upload was sent and answered within the bound
    assert not errors_of(report.outcomes), summary(report)  # no 5xx, no 4xx, no timeout
    assert all(o.status == 201 for o in uploads)
    assert len(searches) >= SEARCHERS and all(o.status == 200 for o in searches)
    sent = {sha256(data): data for i in range(UPLOADERS) for data in tones(i)}
    assert {o.sha256 for o in uploads} == set(sent)
    with server.client() as client:
        after = snapshot(server, client)
        assert after.count == before.count + len(uploads)
        assert len({o.clip_id for o in uploads}) == len(uploads)
        for o in uploads:
            assert_clip_present(client, clip_id=o.clip_id, data=sent[o.sha256])


@pytest.mark.parametrize("senders", [4])
def test_same_bytes_uploaded_at_once_are_stored_once(server, senders):
    data = audio_bytes(noise(seconds=0.5, seed=77))
    barrier = threading.Barrier(senders)
    answers = [None] * senders

    def send(i: int) -> None:
        with server.client(headers=server.write_headers) as client:
            barrier.wait()
            answers[i] = upload(client, "/audio", filename=f"same-{i}.wav", data=data)

    with server.client() as client:
        before = snapshot(server, client)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200] * (senders - 1) + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    with server.client() as client:
        after = snapshot(server, client)
        assert after.count == before.count + 1
        assert len(after.stored_files) == len(before.stored_files) + 1
        assert_clip_present(client, clip_id=answers[0].json()["id"], data=data)
