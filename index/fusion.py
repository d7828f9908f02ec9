"""Reciprocal-rank fusion of rankings (Cormack, Clarke and Buettcher, SIGIR 2009): what hybrid search uses to
join the vector ranking and the keyword ranking, whose scores (cosine, BM25) are not comparable.

A clip at rank r (1-based) of a ranking earns 1 / (RRF_K + r) from it; its fused score is the sum over the
rankings it is in. RRF_K = 60 is the paper's constant: it damps the weight of the very first ranks, so a
clip ranked well by both rankings beats one ranked first by only one. Ties go to the lower id.
"""

from collections import defaultdict
from collections.abc import Sequence

from index.store.records import ClipRecord, Hit, Ranking

RRF_K = 60
RRF_DEPTH = 100  # how deep each ranking is read for a hybrid search


def reciprocal_rank_fusion(rankings: Sequence[Ranking], *, k: int, rrf_k: int = RRF_K) -> Ranking:
    """The k best clips of the fused rankings, best first, each with its fused score."""
    scores: dict[int, float] = defaultdict(float)
    records: dict[int, ClipRecord] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, 1):
            scores[hit.record.id] += 1.0 / (rrf_k + rank)
            records.setdefault(hit.record.id, hit.record)
    best = sorted(scores, key=lambda id_: (-scores[id_], id_))[:k]
    return [Hit(records[id_], scores[id_]) for id_ in best]
