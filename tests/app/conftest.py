"""The service over the real Collection, a random-weight PaSST and MiniLM; one shared Retriever."""

import hashlib
import io
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.compose import build_retriever, store_config
from app.main import create_app
from app.settings import Settings
from index.store.records import NewClip, Tag
from index.stores import open_store
from retrieval.audio import decode_audio
from retrieval.pipeline import Retriever
from tests.audio_fixtures import clicks, noise, sine

API_KEY = "test-key-7f3a"
WRITE = {"X-API-Key": API_KEY}


@pytest.fixture(scope="session")
def retriever(minilm_path, random_tagger, text_encoder) -> Retriever:
    cfg = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    return build_retriever(cfg, tagger=random_tagger, text=text_encoder)


@pytest.fixture
def app_settings(settings) -> Settings:
    # the ingest worker as a thread over the shared model: a worker process would load its own
    return Settings(**{**settings.model_dump(), "api_key": API_KEY, "ingest_worker": "thread"})


@pytest.fixture
def make_client(app_settings, retriever) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings_overrides) -> a started TestClient (lifespan run); closed at teardown."""
    clients = []

    def make(**overrides) -> TestClient:
        s = Settings(**{**app_settings.model_dump(), **overrides})
        client = TestClient(create_app(s, retriever=retriever))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def wav_bytes(wave: np.ndarray, rate: int = 32_000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt)
    return buf.getvalue()


# three short clips that sound nothing alike (<= 1.5 s keeps the random PaSST cheap)
CLIPS = {
    "sine.wav": wav_bytes(sine(440.0, seconds=1.0)),
    "clicks.wav": wav_bytes(clicks(seconds=1.5)),
    "noise.wav": wav_bytes(noise(seconds=0.5), rate=16_000),  # 16,000 samples at 16 kHz: 1 s
}


def upload(client: TestClient, filename: str, data: bytes, headers: dict | None = None, *,
           wait: float = 60, **fields):
    """POST /audio; by default waiting for the clip to be indexed (201 with its record)."""
    return client.post("/audio", files={"file": (filename, data, "audio/wav")}, data=fields,
                       params={"wait": wait} if wait else None, headers=WRITE if headers is None else headers)


@pytest.fixture
def filled(client) -> tuple[TestClient, dict[str, dict]]:
    """The client with CLIPS added; name -> the record the service answered."""
    records = {}
    for name, data in CLIPS.items():
        r = upload(client, name, data)
        assert r.status_code == 201, r.text
        records[name] = r.json()
    return client, records


PLANTED = 8


@pytest.fixture
def planted(app_settings, retriever, tmp_path) -> dict[str, tuple[int, np.ndarray]]:
    """Clips with known vectors written straight into the app's store before it opens (no PaSST), lasting
    1, 2, ... 8 s; each points at one short WAV. name -> (id, its (D,) vector)."""
    audio = tmp_path / "planted.wav"
    audio.write_bytes(wav_bytes(sine(440.0, seconds=0.5)))
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((PLANTED, retriever.spec.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)  # (N, D)
    clips = [NewClip(name=f"planted{i}.wav", location=str(audio), sha256=f"{i + 1:064x}", duration=1.0 + i,
                     sample_rate=32_000, tags=(Tag("Sine wave", 0.5),)) for i in range(PLANTED)]
    with open_store(store_config(app_settings), retriever.spec) as store:
        added = store.add_many(clips, xb, rng.standard_normal((PLANTED, 527)))
    return {a.record.name: (a.record.id, xb[i]) for i, a in enumerate(added)}


DEFAULT_WEIGHTS = {"query": 1.0, "like": 1.0, "unlike": 0.5, "not": 0.5}  # as README documents them


def composite_ranking(retriever: Retriever, planted: dict[str, tuple[int, np.ndarray]],
                      body: dict) -> tuple[list[str], dict[str, float]]:
    """The oracle of a composite POST /search over planted clips: the vector from the formula (numpy, the
    texts through the retriever's text side), the clip names ranked by it with their scores, the clips named
    in `like` and `unlike` left out."""
    w = {**DEFAULT_WEIGHTS, **body.get("weights", {})}
    vec = {i: v for i, v in planted.values()}
    x = np.zeros(retriever.spec.dim)
    if body.get("query"):
        x += w["query"] * retriever.encode_text([body["query"]])[0]
    if body.get("like"):
        x += w["like"] * np.mean([vec[i] for i in body["like"]], axis=0)
    if body.get("unlike"):
        x -= w["unlike"] * np.mean([vec[i] for i in body["unlike"]], axis=0)
    if body.get("not"):
        x -= w["not"] * retriever.encode_text([body["not"]])[0]
    x /= np.linalg.norm(x)
    judged = {*body.get("like", ()), *body.get("unlike", ())}
    scores = {name: float(v @ x) for name, (i, v) in planted.items() if i not in judged}
    return sorted(scores, key=scores.get, reverse=True), scores


def vector_of(retriever: Retriever, data: bytes) -> np.ndarray:
    """The oracle: the clip's (D,) vector straight from the library."""
    return retriever.encode_audio(decode_audio(data).wave)[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metric_samples(client) -> dict[tuple[str, tuple], float]:
    """/metrics as {(name, sorted labels): value}."""
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
