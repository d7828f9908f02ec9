"""The challenge baseline's triplet ranking loss with in-batch impostors, vectorised.

A batch holds B (clip, caption) pairs; ``clip_ids`` says which clip each row's audio is. For every pair i we
draw, from the batch, a caption impostor j and an audio impostor k, both of another clip than i's (a row
with the same clip id, e.g. another caption of the same Clotho clip, is never an impostor), and j != k as
the baseline requires. Then, with s(a, q) the cosine score,

    loss_i = max(0, m + s(a_i, q_j) - s(a_i, q_i)) + max(0, m + s(a_k, q_i) - s(a_i, q_i))

and the loss is the mean over the pairs that have an impostor. When a batch holds only one row of another
clip, j = k is allowed; a pair whose whole batch is its own clip has no impostor and is left out.
"""

import torch

from training.config import MARGIN

NO_IMPOSTOR = -1


def sample_impostors(clip_ids: torch.Tensor, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) clip ids -> caption impostors (B,), audio impostors (B,); NO_IMPOSTOR where there is none."""
    B = clip_ids.shape[0]
    other = clip_ids[:, None] != clip_ids[None, :]  # (B, B) rows of another clip
    # a uniform draw among the allowed rows: the argmax of uniform noise, with forbidden rows pushed below
    noise = torch.rand((B, B), generator=generator, device=clip_ids.device)
    j = torch.where(other, noise, -1.0).argmax(1)  # (B,)
    noise = torch.rand((B, B), generator=generator, device=clip_ids.device)
    scores_k = torch.where(other, noise, -1.0)
    rows = torch.arange(B, device=clip_ids.device)
    scores_k[rows, j] = torch.where(other[rows, j], -0.5, -1.0)  # j only as a last resort
    k = scores_k.argmax(1)  # (B,)
    has = other.any(1)
    return torch.where(has, j, NO_IMPOSTOR), torch.where(has, k, NO_IMPOSTOR)


def triplet_loss(audio: torch.Tensor, text: torch.Tensor, *, caption_imp: torch.Tensor,
                 audio_imp: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """audio (B, D), text (B, D) unit vectors of B pairs, impostor rows (B,) -> scalar loss."""
    S = audio @ text.T  # (B, B): S[a, q] = s(audio a, caption q)
    rows = torch.arange(S.shape[0], device=S.device)
    keep = caption_imp != NO_IMPOSTOR  # (B,)
    rows, j, k = rows[keep], caption_imp[keep], audio_imp[keep]
    pos = S[rows, rows]  # (b,)
    per_pair = (margin + S[rows, j] - pos).clamp(min=0) + (margin + S[k, rows] - pos).clamp(min=0)
    return per_pair.mean() if per_pair.numel() else S.sum() * 0.0
