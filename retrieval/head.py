"""The learnable head: PaSST logits projected into the text space, fused with tag-name embeddings.

    audio = L2(Linear(LayerNorm(logits)))                  # trainable: 2*527 + 527*D + D
    tag   = L2((sigmoid(logits) @ E) / sum(sigmoid))       # E: (527, D) tag-name embeddings, fixed
    a     = L2(lam * audio + (1 - lam) * tag)
    q     = L2(LayerNorm(text, no affine))                 # no parameters
"""

import torch
import torch.nn.functional as F
from torch import nn

from retrieval.config import DEFAULT_LAMBDA, N_TAGS


class RetrievalHead(nn.Module):
    def __init__(self, tag_embeddings: torch.Tensor, *, lam: float = DEFAULT_LAMBDA, n_tags: int = N_TAGS):
        super().__init__()
        if tag_embeddings.ndim != 2 or tag_embeddings.shape[0] != n_tags:
            raise ValueError(f"tag embeddings must be ({n_tags}, D), got {tuple(tag_embeddings.shape)}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        self.dim = int(tag_embeddings.shape[1])
        self.n_tags = n_tags
        self.lam = float(lam)
        self.audio_norm = nn.LayerNorm(n_tags, elementwise_affine=True)
        self.audio_proj = nn.Linear(n_tags, self.dim)
        nn.init.kaiming_uniform_(self.audio_proj.weight)
        nn.init.zeros_(self.audio_proj.bias)
        self.register_buffer("tag_embeddings", tag_embeddings.detach().float().clone())  # (527, D)

    def encode_audio(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 527) logits -> (B, D) unit vectors."""
        audio = F.normalize(self.audio_proj(self.audio_norm(logits)), dim=-1)  # (B, D)
        if self.lam >= 1.0:
            return audio
        p = torch.sigmoid(logits)  # (B, 527)
        E: torch.Tensor = self.tag_embeddings  # type: ignore[assignment]  # a registered buffer
        tag = F.normalize((p @ E) / p.sum(-1, keepdim=True), dim=-1)  # (B, D)
        return F.normalize(self.lam * audio + (1.0 - self.lam) * tag, dim=-1)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """(B, D) sentence embeddings -> (B, D) unit vectors."""
        return F.normalize(F.layer_norm(text, (self.dim,)), dim=-1)

    def forward(self, logits: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, 527), (M, D) -> (B, M) cosine scores."""
        return self.encode_audio(logits) @ self.encode_text(text).T


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
