"""Window logits kept as float16 instead of float32: the bytes saved against what a re-projection loses.

The store keeps each window's 527 PaSST logits only so that a new head can re-project the windows without
PaSST (`retrieval index reproject`). This projects the same windows through a head twice, from float32 logits
(the reference) and from their float16 rounding, and compares: the largest difference of a vector's
component, the lowest cosine between the two vectors of a window, and, for real captions as queries, whether
the best window of each recording and the top-10 windows overall stay the same.

    python -m benchmarks.window_logits [--hours 20] [--queries 100] [--text-model DIR]

Windows: the synthetic hour-long recordings of benchmarks/archive_scale.py (scenes of AudioSet tags with
drift; logits about -9 to +7). Heads: the service's zero-shot head (tag-name embeddings by all-mpnet-base-v2)
and a head with the trained shape and fusion (lambda 0.8) at random initial weights.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.archive_scale import recording_logits
from benchmarks.common import captions, header, mpnet_folder, table
from retrieval.head import RetrievalHead

K = 10


def project(head: RetrievalHead, logits: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head.encode_audio(torch.from_numpy(logits)).numpy()


def agreement(queries: np.ndarray, s_ref: np.ndarray, other: np.ndarray, hours: int) -> tuple[float, float]:
    """Against the reference scores (Q, W): the share of recordings whose best window stays, and the top-10
    windows' overlap, when the windows' vectors are `other`."""
    s_other = queries @ other.T
    best = np.mean([np.mean(a.reshape(hours, -1).argmax(1) == b.reshape(hours, -1).argmax(1))
                    for a, b in zip(s_ref, s_other, strict=True)])
    top = np.mean([len(set(np.argsort(-a)[:K]) & set(np.argsort(-b)[:K])) / K
                   for a, b in zip(s_ref, s_other, strict=True)])
    return float(best), float(top)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=int, default=20, help="hour-long recordings")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--text-model", type=Path, default=None, help="all-mpnet-base-v2 folder")
    args = ap.parse_args(argv)
    header("Window logits: float16 against float32, bytes and re-projection")
    from app.compose import build_retriever
    from app.settings import Settings

    folder = mpnet_folder(args.text_model)
    settings = Settings(data_dir=Path(tempfile.gettempdir()), text_model=str(folder), passt_weights="random",
                        device="cpu")
    retriever = build_retriever(settings, with_audio=False)
    tags = retriever.head.tag_embeddings  # (527, D)
    torch.manual_seed(0)
    heads = {"zero-shot (service)": RetrievalHead(tags, lam=0.0),
             "trained shape, lambda 0.8": RetrievalHead(tags)}
    queries = retriever.encode_text(captions()[:args.queries]).astype(np.float32)  # (Q, D)
    rng = np.random.default_rng(0)
    recordings = [recording_logits(rng, 1446) for _ in range(args.hours)]
    logits = np.concatenate(recordings)  # (W, 527)
    rounded = logits.astype(np.float16).astype(np.float32)
    rows = []
    for name, head in heads.items():
        ref, half = project(head, logits), project(head, rounded)  # (W, D)
        stored = ref.astype(np.float16).astype(np.float32)  # what the store keeps of ref: the reference gap
        cos = (ref * half).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(half, axis=1)
        s_ref = queries @ ref.T  # (Q, W)

        (best, top), (best16, top16) = agreement(queries, s_ref, half, args.hours), \
            agreement(queries, s_ref, stored, args.hours)
        rows.append([name, f"{np.abs(ref - half).max():.2e} ({np.abs(ref - stored).max():.2e})",
                     f"{cos.min():.7f}", f"{np.abs(s_ref - queries @ half.T).max():.2e}",
                     f"{best:.4f} ({best16:.4f})", f"{top:.4f} ({top16:.4f})"])
    table(rows, ["head", "largest component difference", "lowest cosine", "largest score difference",
                 "same best window per recording", "top-10 windows overlap"])
    print("In brackets: the same figures for the float32 projection against its float16 rounding, which is "
          "what the store keeps of every window vector whatever the logits: the gap that is there anyway.")
    per_hour = 1446 * 527
    print(f"{len(logits):,} windows ({args.hours} hours), {args.queries} captions. Logits per hour of audio: "
          f"{per_hour * 4 / 1e6:.2f} MB as float32, {per_hour * 2 / 1e6:.2f} MB as float16. The largest "
          f"rounding of a logit: {np.abs(logits - rounded).max():.2e} (float16 keeps 11 significant bits).")


if __name__ == "__main__":
    main()
