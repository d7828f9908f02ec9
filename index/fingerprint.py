"""The model a store's vectors were made with, and the refusal to mix vectors of two models."""

import json

from retrieval.errors import CheckpointMismatch

# keys of Retriever.fingerprint that only PaSST decides: a change there means the stored logits are stale too
TAGGER_KEYS = ("passt_arch", "window_s", "hop_s", "sample_rate")


def canonical(fingerprint: dict) -> dict:
    """The fingerprint as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(fingerprint, sort_keys=True))


def check_fingerprint(stored: dict, wanted: dict, *, where: str) -> None:
    """Raise CheckpointMismatch, saying how to fix it, when a store's model is not the configured one."""
    stored, wanted = canonical(stored), canonical(wanted)
    if stored == wanted:
        return
    diff = ", ".join(f"{k}: index has {stored.get(k)!r}, configured {wanted.get(k)!r}"
                     for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k))
    if any(stored.get(k) != wanted.get(k) for k in TAGGER_KEYS):
        fix = ("the stored PaSST logits come from another tagger, so the collection must be indexed again: "
               "use another RETRIEVAL_DATA_DIR (or configure the tagger the index was built with)")
    else:
        fix = ("set RETRIEVAL_CHECKPOINT (and RETRIEVAL_TEXT_MODEL) to what the index was built with, "
               "or re-project the stored logits with the configured model: "
               "`retrieval index reproject --checkpoint CKPT` (no PaSST needed), "
               "or use another RETRIEVAL_DATA_DIR")
    raise CheckpointMismatch(f"the index in {where} was built with another model ({diff}); {fix}")
