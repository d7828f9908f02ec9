"""What a vector, a logit or a feature was made with: the one description of the model.

A :class:`ModelSpec` names the PaSST tagger (architecture, windowing, weights), the text model (id, revision,
dimension) and the head (checkpoint sha256 or ``zero-shot``, and ``lam``). Checkpoints, feature sidecars,
stores, Ray shard manifests and ``/health/ready`` record it with :meth:`ModelSpec.to_dict`; whatever must
refuse a mismatch compares two of them with :meth:`ModelSpec.require_match`. Files written before the spec
existed (their model described by a checkpoint ``HeadConfig``, a store "fingerprint", a feature sidecar's
keys or a shard manifest's ``tagger``) are read by the same :meth:`ModelSpec.from_dict`.

Parts of a spec may be absent: a shard manifest knows only the tagger, a feature file no head. ``None`` in
``passt_weights`` or ``lam`` means "not recorded" (files of the previous formats) and matches any value;
everywhere else ``None`` is a value like any other, but for one case: a text model folder without a
manifest has a revision of its own, ``weights-`` and a fingerprint of its weights
(:func:`retrieval.text.read_identity`), and files made before it recorded none: ``None`` there matches any
such revision.
"""

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from retrieval.config import PASST_ARCH, SAMPLE_RATE, Windowing
from retrieval.errors import CheckpointMismatch

FORMAT = "model-spec/1"
ZERO_SHOT = "zero-shot"
RANDOM_WEIGHTS = "random"

PASST_FIELDS = ("passt_arch", "window_s", "hop_s", "sample_rate", "passt_weights")
TEXT_FIELDS = ("text_model", "text_model_revision", "dim")
HEAD_FIELDS = ("head", "lam")
ENCODER_FIELDS = PASST_FIELDS + TEXT_FIELDS
ALL_FIELDS = ENCODER_FIELDS + HEAD_FIELDS
UNRECORDED_MATCHES_ANY = ("passt_weights", "lam")
FLOAT_FIELDS = ("window_s", "hop_s", "lam")
# the revision retrieval.text.read_identity gives a folder without a manifest: a fingerprint of its weights
WEIGHTS_REVISION = "weights-"


def folder_revision(revision: str | None) -> bool:
    """Whether `revision` is a folder's own (a fingerprint of its weights), or none: a folder named by its
    folder's name, compared by that name."""
    return revision is None or revision.startswith(WEIGHTS_REVISION)


@dataclass(frozen=True)
class ModelSpec:
    passt_arch: str = PASST_ARCH
    window_s: float = Windowing.window_s
    hop_s: float = Windowing.hop_s
    sample_rate: int = SAMPLE_RATE
    passt_weights: str | None = None  # sha256 of the weights file, "random", or None (not recorded)
    text_model: str | None = None
    text_model_revision: str | None = None
    dim: int | None = None
    head: str | None = None  # sha256 of the head checkpoint, or "zero-shot"
    lam: float | None = None  # weight of the projection against the tag branch

    @property
    def windowing(self) -> Windowing:
        return Windowing(window_s=self.window_s, hop_s=self.hop_s, sample_rate=self.sample_rate)

    @property
    def zero_shot(self) -> bool:
        return self.head == ZERO_SHOT

    @property
    def id(self) -> str:
        """16 hex digits naming this spec (equal specs, equal ids: 10 and 10.0 s are one window, `models/x/`,
        `/srv/models/x` and `x` one text model folder)."""
        d = {**self.to_dict(), **{k: self._compared(k) for k in (*FLOAT_FIELDS, "text_model")}}
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def _compared(self, name: str):
        """Field `name` as specs compare it (:func:`_normal`)."""
        return _normal(getattr(self, name), name, revision=self.text_model_revision)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        """A spec from :meth:`to_dict`, or from any description of a model that earlier files hold."""
        if d.get("format") == FORMAT:
            return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
        return _from_legacy(d)

    def with_head(self, head: str, lam: float) -> "ModelSpec":
        return replace(self, head=head, lam=float(lam))

    def encoders(self) -> "ModelSpec":
        """The spec without its head: what logits and text embeddings depend on."""
        return replace(self, head=None, lam=None)

    def diff(self, other: "ModelSpec", *, only: tuple[str, ...] = ALL_FIELDS) -> dict[str, tuple]:
        """field -> (this value, other value) for every field of `only` that differs."""
        out = {}
        for name in only:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in UNRECORDED_MATCHES_ANY and (mine is None or theirs is None):
                continue
            if name == "text_model_revision" and _unrecorded_fingerprint(mine, theirs):
                continue
            if self._compared(name) != other._compared(name):
                out[name] = (mine, theirs)
        return out

    def require_match(self, wanted: "ModelSpec", *, only: tuple[str, ...] = ALL_FIELDS, what: str,
                      fix: str = "") -> None:
        """Raise CheckpointMismatch, naming every differing field, unless `wanted` matches this spec."""
        diff = self.diff(wanted, only=only)
        if diff:
            fields_ = ", ".join(f"{k}: {what} has {a!r}, configured {b!r}" for k, (a, b) in diff.items())
            raise CheckpointMismatch(f"{what} was made with another model ({fields_})" + (f"; {fix}" if fix
                                                                                            else ""))


def _unrecorded_fingerprint(mine: str | None, theirs: str | None) -> bool:
    """Whether one text model revision is a folder's fingerprint and the other none: a file made before
    folders had one (it recorded no revision), which matches any (the folder's name is compared still)."""
    return (mine is None) != (theirs is None) and folder_revision(mine) and folder_revision(theirs)


def _normal(value, name: str = "", *, revision: str | None = None):
    """One spelling of a value: numbers as floats (10 and 10.0 s are one window); a text model with a hub
    revision (a manifest's hub id) as it is, without `./`, `//` or a trailing `/`; one without (a folder with
    no manifest: no revision recorded, or its weights' fingerprint) by its folder's name, which is what
    `retrieval.text.read_identity` names it: files made before that named it by a path (`models/x`,
    `/srv/models/x`: the library) or by the setting (`x`: the service), and all of these are the one model
    `x` (two folders of one name are told apart by their weights' fingerprints, where both have one)."""
    if name == "text_model" and isinstance(value, str):
        path = posixpath.normpath(value)
        return posixpath.basename(path) if folder_revision(revision) else path
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _from_legacy(d: dict[str, Any]) -> ModelSpec:
    """Earlier shapes: a store fingerprint, a HeadConfig, a feature sidecar, a shard manifest's tagger."""
    flat = {**d, **d.get("windowing", {})}
    known = {f.name for f in fields(ModelSpec)}
    spec = ModelSpec(**{k: v for k, v in flat.items() if k in known})
    if spec.zero_shot and spec.lam is None:
        spec = replace(spec, lam=0.0)
    return spec
