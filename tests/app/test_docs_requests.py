"""Every request body README.md and docs/ show (titled JSON blocks, `curl -d` lines) is accepted by the
service, over a collection that holds every clip id they name."""

import json
import re

import numpy as np
import pytest

from app.compose import store_config
from index.store.records import NewClip, Tag
from index.stores import open_store
from tests.app.conftest import WRITE
from tests.docs.markdown import Request, requests

REQUESTS = requests()


def named_ids(req: Request) -> list[int]:
    """The clip ids a request names: in its route (/audio/12) and its `like` / `unlike` lists."""
    body = json.loads(req.body)
    ids = [int(i) for i in re.findall(r"/audio/(\d+)", req.route)]
    return ids + [int(i) for key in ("like", "unlike") for i in body.get(key, [])]


@pytest.fixture
def holding_every_named_clip(app_settings, retriever, tmp_path):
    n = max([1, *(i for r in REQUESTS for i in named_ids(r))])
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, retriever.spec.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)  # (n, D)
    clips = [NewClip(name=f"clip{i}.wav", location=str(tmp_path / f"clip{i}.wav"), sha256=f"{i + 1:064x}",
                     duration=2.0, sample_rate=32_000, tags=(Tag("Rain", 0.5),)) for i in range(n)]
    with open_store(store_config(app_settings), retriever.spec) as store:
        assert [a.record.id for a in store.add_many(clips, xb, rng.standard_normal((n, 527)))] == \
            list(range(1, n + 1))


def test_the_docs_show_request_bodies():
    assert {(r.method, r.route) for r in REQUESTS} >= {("POST", "/search")}
    assert len(REQUESTS) >= 3


@pytest.mark.parametrize("req", REQUESTS, ids=[f"{r.where} {r.method} {r.route}" for r in REQUESTS])
def test_each_request_the_docs_show_is_accepted(req, holding_every_named_clip, make_client):
    client = make_client()
    answer = client.request(req.method, req.route, json=json.loads(req.body), headers=WRITE)
    assert 200 <= answer.status_code < 300, (req.where, answer.status_code, answer.text)
