"""Composite queries: texts and example clips, towards and away, as one unit vector of the shared space.

    xq = L2(w_query * q + w_like * mean(like) - w_unlike * mean(unlike) - w_not * q_not)

`q` and `q_not` are texts through the retriever's text side, `like` and `unlike` stored clip vectors (an
uploaded example joins `like`). The default weights follow Rocchio's relevance feedback (Manning, Raghavan
and Schuetze, Introduction to Information Retrieval, 9.1.1, suggest 1, 0.75 and 0.15 for the query, the
relevant and the non-relevant documents): what to move towards counts fully, what to move away from less,
since "not like this" says that something about a clip is wrong but not what. These negatives are picked by
hand, not every unjudged result, so they get 0.5: enough to reorder a ranking without turning the query into
the negation of its parts. The text and the liked clips count alike (1).
"""

import json
import operator
from dataclasses import dataclass, field

import numpy as np

from retrieval.errors import ZeroQuery

# a sum of unit vectors with weights <= 2 shorter than this has cancelled out: its direction would be the
# encoders' rounding noise (float32 vectors of one text encoded twice differ by ~1e-7 per component)
MIN_NORM = 1e-4


@dataclass(frozen=True)
class Weights:
    query: float = 1.0
    like: float = 1.0
    unlike: float = 0.5
    not_: float = 0.5


@dataclass(frozen=True)
class CompositeQuery:
    """What a composite query is made of: texts and clip ids, towards and away, and the weights."""

    text: str | None = None
    like: tuple[int, ...] = ()
    unlike: tuple[int, ...] = ()
    not_: str | None = None
    weights: Weights = field(default_factory=Weights)

    def __post_init__(self) -> None:
        for role in ("like", "unlike"):
            ids = getattr(self, role)
            try:
                if isinstance(ids, str | bytes):
                    raise TypeError
                object.__setattr__(self, role, tuple(operator.index(i) for i in ids))
            except TypeError:
                raise TypeError(f"{role} is a tuple of clip ids (integers), not {ids!r}") from None
        both = sorted(set(self.like) & set(self.unlike))
        if both:
            raise ValueError(f"clips {both} are in both `like` and `unlike`")

    @property
    def judged(self) -> frozenset[int]:
        """The clips named in `like` or `unlike`: results leave them out (the user has heard them)."""
        return frozenset(self.like) | frozenset(self.unlike)

    def describe(self, example: str | None = None) -> str:
        """The text alone (or the example's file name alone) as it is; otherwise its parts, towards (+)
        then away (-): `"rain" + like #3, #7 - unlike #2 - not "thunder"`."""
        alone = [p for p in (example, self.text) if p is not None]
        if len(alone) == 1 and not (self.like or self.unlike or self.not_ is not None):
            return alone[0]
        towards = [example, _quoted(self.text), _ids("like", self.like)]
        away = [_ids("unlike", self.unlike), None if self.not_ is None else f"not {_quoted(self.not_)}"]
        return " + ".join(p for p in towards if p) + "".join(f" - {p}" for p in away if p)


def _quoted(text: str | None) -> str | None:
    return None if text is None else json.dumps(text, ensure_ascii=False)


def _ids(role: str, ids: tuple[int, ...]) -> str | None:
    return f"{role} " + ", ".join(f"#{i}" for i in ids) if ids else None


def combine(*, query: np.ndarray | None, like: np.ndarray, unlike: np.ndarray, not_: np.ndarray | None,
            weights: Weights) -> np.ndarray:
    """(D,) text vectors or None, (n, D) and (m, D) clip vectors (n or m may be 0) -> the (D,) unit query
    vector; ZeroQuery when the weighted sum is (numerically) zero."""
    dim = like.shape[1]
    x = np.zeros(dim, dtype=np.float64)  # (D,)
    if query is not None:
        x += weights.query * query
    if len(like):
        x += weights.like * like.mean(axis=0)
    if len(unlike):
        x -= weights.unlike * unlike.mean(axis=0)
    if not_ is not None:
        x -= weights.not_ * not_
    norm = float(np.linalg.norm(x))
    if norm < MIN_NORM:
        raise ZeroQuery("the query's parts cancel out (their weighted sum is zero): give a positive part "
                        "more weight, or push away from something else")
    return (x / norm).astype(np.float32)
