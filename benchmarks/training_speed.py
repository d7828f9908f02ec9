"""Training speed: seconds per epoch on Clotho-sized features (19,195 captions of 3,839 clips, 768-d), the
vectorised triplet loss (training.loss) against a per-sample loop over the same pairs and impostors.

Both sides start from the same head, see the same batches and impostors and take Adam steps; the per-batch
losses are printed side by side (they differ only by float rounding).

    python -m benchmarks.training_speed --epochs 1
"""

import argparse
import copy
import time

import numpy as np
import torch

from benchmarks.common import header, table
from retrieval.config import N_TAGS
from retrieval.head import RetrievalHead
from training.loss import MARGIN, NO_IMPOSTOR, sample_impostors, triplet_loss

N_CLIPS, N_CAPTIONS, DIM, BATCH = 3839, 19195, 768, 128


def per_sample_loss(a: torch.Tensor, q: torch.Tensor, j: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The baseline's loss, one pair at a time: a (B, D), q (B, D), impostor rows j, k (B,)."""
    terms = []
    for i in range(a.shape[0]):
        if j[i] == NO_IMPOSTOR:
            continue
        pos = a[i] @ q[i]
        terms.append(torch.clamp(MARGIN + a[i] @ q[j[i]] - pos, min=0)
                     + torch.clamp(MARGIN + a[k[i]] @ q[i] - pos, min=0))
    return torch.stack(terms).mean()


def features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic Clotho-sized features: logits (N, 527), captions (M, D), caption clip (M,), tags (527, D)."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(N_CLIPS, N_TAGS, generator=g) - 4
    text = torch.nn.functional.normalize(torch.randn(N_CAPTIONS, DIM, generator=g), dim=1)
    clip_of = torch.arange(N_CAPTIONS) // 5  # five captions per clip, as in Clotho
    tags = torch.nn.functional.normalize(torch.randn(N_TAGS, DIM, generator=g), dim=1)
    return logits, text, clip_of, tags


def epoch(head, optimizer, loss_fn, batches, *, logits, text, clip_of) -> tuple[float, list[float]]:
    """One epoch over precomputed (pair ids, impostors) batches -> (seconds, per-batch losses)."""
    losses = []
    t0 = time.perf_counter()
    for idx, j, k in batches:
        a = head.encode_audio(logits[clip_of[idx]])  # (B, D)
        q = head.encode_text(text[idx])  # (B, D)
        loss = loss_fn(a, q, j, k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return time.perf_counter() - t0, losses


def loss_alone(loss_fn, batches, *, head, logits, text, clip_of) -> float:
    """Seconds for the loss forward + backward alone over the epoch's batches (the head's outputs are
    computed beforehand and are leaves here), so the head and Adam, common to both sides, are left out."""
    inputs = []
    with torch.no_grad():
        for idx, j, k in batches:
            inputs.append((head.encode_audio(logits[clip_of[idx]]), head.encode_text(text[idx]), j, k))
    t0 = time.perf_counter()
    for a, q, j, k in inputs:
        a, q = a.clone().requires_grad_(), q.clone().requires_grad_()
        loss_fn(a, q, j, k).backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1, help="epochs timed on each side")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (2 threads on a loaded 2-core machine ran 20x slower than 1 here)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    header("Training: seconds per epoch, vectorised loss against a per-sample loop")
    logits, text, clip_of, tags = features()
    torch.manual_seed(0)
    head_vec = RetrievalHead(tags, lam=0.8)
    head_ref = copy.deepcopy(head_vec)
    opt_vec = torch.optim.Adam(head_vec.parameters(), lr=1e-3)
    opt_ref = torch.optim.Adam(head_ref.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)

    def vectorised(a, q, j, k):
        return triplet_loss(a, q, caption_imp=j, audio_imp=k)

    rows, diffs = [], []
    for e in range(1, args.epochs + 1):
        batches = [(idx, *sample_impostors(clip_of[idx], g))
                   for idx in torch.randperm(N_CAPTIONS, generator=g).split(BATCH)]
        t_vec, l_vec = epoch(head_vec, opt_vec, vectorised, batches, logits=logits, text=text,
                             clip_of=clip_of)
        t_ref, l_ref = epoch(head_ref, opt_ref, per_sample_loss, batches, logits=logits, text=text,
                             clip_of=clip_of)
        diffs.append(np.abs(np.subtract(l_vec, l_ref)).max())
        rows.append([e, len(batches), f"{t_ref:.2f}", f"{t_vec:.2f}", f"{t_ref / t_vec:.1f}x",
                     f"{np.mean(l_ref):.6f}", f"{np.mean(l_vec):.6f}", f"{diffs[-1]:.1e}"])
    print(f"{N_CAPTIONS:,} captions of {N_CLIPS:,} clips, {DIM}-d, batch {BATCH}, Adam lr 1e-3, CPU, "
          f"{torch.get_num_threads()} torch threads\n")
    table(rows, ["epoch", "batches", "per-sample loop s (reference)", "vectorised s", "speed-up",
                 "mean loss, loop", "mean loss, vectorised", "max per-batch |diff|"])
    feats = {"head": head_vec, "logits": logits, "text": text, "clip_of": clip_of}
    l_ref = loss_alone(per_sample_loss, batches, **feats)
    l_vec = loss_alone(vectorised, batches, **feats)
    print("The loss alone (forward + backward over one epoch's batches; the head's forward and backward and "
          "Adam, the same work on both sides, left out):\n")
    table([[f"{l_ref:.2f}", f"{l_vec:.3f}", f"{l_ref / l_vec:.0f}x"]],
          ["per-sample loop s (reference)", "vectorised s", "speed-up"])


if __name__ == "__main__":
    main()
