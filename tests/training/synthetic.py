"""Planted feature files: captions are a hidden linear map of the logits, plus tag structure and noise."""

import numpy as np

from retrieval.config import N_TAGS, SAMPLE_RATE, Windowing
from retrieval.model_spec import ModelSpec
from retrieval.windows import WindowLogits, window_spans
from training.features import FORMAT, FeatureSet


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def planted_world(dim: int = 32, seed: int = 0) -> dict:
    """What train and validation share: the hidden map W, the tag-name embeddings E, the tags that occur."""
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(N_TAGS, dim)) / np.sqrt(N_TAGS), "E": l2(rng.normal(size=(N_TAGS, dim))),
            "vocab": rng.choice(N_TAGS, size=40, replace=False)}


def planted_features(world: dict, *, n_clips: int, seed: int, captions_per_clip: int = 5,
                     split: str = "train", noise: float = 0.3) -> FeatureSet:
    rng = np.random.default_rng(seed)
    W, E = world["W"], world["E"]
    logits = rng.normal(-4.0, 0.1, size=(n_clips, N_TAGS))  # (N, 527) mostly silent tags
    for row in logits:
        row[rng.choice(world["vocab"], size=3, replace=False)] += rng.uniform(4, 8, size=3)  # three active
    z = (logits - logits.mean(1, keepdims=True)) / logits.std(1, keepdims=True)
    p = 1 / (1 + np.exp(-logits))
    clean = l2(z @ W) + 0.5 * l2(p @ E)  # (N, D) the hidden map plus the tag structure
    caption_clip = np.repeat(np.arange(n_clips), captions_per_clip)  # (M,)
    text = l2(clean[caption_clip] + noise * rng.normal(size=(len(caption_clip), W.shape[1])))  # (M, D)
    meta = {"format": FORMAT, "dataset": "planted", "split": split,
            "clips": [f"clip_{i:04d}.wav" for i in range(n_clips)],
            "captions": [f"caption {m} of clip {c}" for m, c in enumerate(caption_clip)],
            "model_spec": ModelSpec(text_model="planted", text_model_revision=None, dim=W.shape[1]).to_dict()}
    return FeatureSet(logits=logits.astype(np.float32), text=text.astype(np.float32),
                      caption_clip=caption_clip.astype(np.int64), tag_text=E.astype(np.float32), meta=meta)


def planted_windows(durations: list[float], *, seed: int = 0) -> list[WindowLogits]:
    """hear21passt's windows of clips of these lengths, with random logits."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in durations:
        starts, ends = window_spans(int(seconds * SAMPLE_RATE), Windowing())
        out.append(WindowLogits(rng.normal(size=(len(starts), N_TAGS)).astype(np.float32), starts, ends))
    return out


class PlantedTagger:
    """A tagger without PaSST: window j of a clip of n samples has logit 0 = n / 1000 and logit 1 = j."""

    spec = ModelSpec(passt_weights="planted")

    def __init__(self, *, stop_after: int | None = None):
        self.stop_after, self.calls = stop_after, 0

    def window_logits(self, wave: np.ndarray) -> WindowLogits:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        starts, ends = window_spans(len(wave), self.spec.windowing)
        logits = np.zeros((len(starts), N_TAGS), np.float32)
        logits[:, 0], logits[:, 1] = len(wave) / 1000, np.arange(len(starts))
        return WindowLogits(logits, starts, ends)

    def window_logits_many(self, waves, *, on_batch=None):
        return [self.window_logits(w) for w in waves]


class PlantedText:
    """The text encoder planted_features names ("planted", of `dim`): its spec, and no sentences encoded."""

    model_id, revision = "planted", None

    def __init__(self, dim: int):
        self.dim = dim

    def encode(self, sentences, **kwargs):
        raise AssertionError("the planted text model encodes nothing")


def planted_models(dim: int):
    """`models()` for files of planted_features: their spec, and a tagger that refuses to be run."""
    return lambda: (PlantedTagger(stop_after=0), PlantedText(dim))
