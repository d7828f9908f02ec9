"""The frozen PaSST AudioSet tagger: audio in, 527 pre-sigmoid logits per window out (hear21passt's scheme).

Clips up to one window take one forward pass on the raw samples; longer clips are reflect-padded by half a
window on each side and cut into windows every hop, exactly as hear21passt's ``get_scene_embeddings``; the
clip's logits are the mean over its windows. ``batch_windows`` > 1 runs several windows in one forward pass,
windows of several clips together (:meth:`PasstTagger.window_logits_many`); the tests hold every path to
hear21passt's loop within 1e-5.

Attention runs through ``scaled_dot_product_attention`` on the instances this module builds (exact, faster;
see :mod:`retrieval.passt_runtime`); ``precision`` ``bf16`` (or ``fp16`` on CUDA) is an opt-in autocast.
"""

import logging
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.config import (
    FMAX_AUG_RANGE,
    FMIN_AUG_RANGE,
    FREQ_MASK,
    MEL_BINS,
    MEL_FMAX,
    MEL_FMIN,
    MEL_HTK,
    MEL_NORM,
    MIN_FRAMES,
    N_FFT,
    N_TAGS,
    STFT_HOP,
    STFT_WINDOW,
    TIME_MASK,
    Windowing,
)
from retrieval.device import resolve_device
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.model_spec import RANDOM_WEIGHTS, ModelSpec
from retrieval.passt_runtime import precision_context, quiet_stdout, use_sdpa_attention
from retrieval.windows import WindowLogits, window_spans

log = logging.getLogger(__name__)

# PaSST's patch embedding needs MIN_FRAMES STFT frames: shorter clips cannot go through hear21passt at all,
# so they are zero-padded up to this length (the only place we differ from it).
MIN_SAMPLES = MIN_FRAMES * STFT_HOP
OFFICIAL_WEIGHTS = "official"
RANDOM_SEED = 0

# hear21passt warns on every clip that is not exactly 998 frames, and about torch API deprecations
warnings.filterwarnings("ignore", message="Input image size", module="hear21passt")
warnings.filterwarnings("ignore", category=FutureWarning, module="hear21passt")
warnings.filterwarnings("ignore", message="stft with return_complex=False", category=UserWarning)


def build_passt(weights: str | Path, *, spec: ModelSpec = ModelSpec()):
    """Build hear21passt's ``PasstBasicWrapper`` in logits mode, with the architecture and windowing of
    `spec`.

    ``weights`` is a local checkpoint path, ``"official"`` (download from the URL hear21passt uses) or
    ``"random"`` (untrained weights, the same in every process, for tests only).
    """
    local = str(weights) not in (OFFICIAL_WEIGHTS, RANDOM_WEIGHTS)
    if local and not Path(weights).is_file():  # before the slow imports: a missing file fails at once
        raise ModelNotFound(f"PaSST weights not found at {weights}; run `retrieval models fetch`")
    from hear21passt.models.passt import checkpoint_filter_fn, get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    with quiet_stdout():
        mel = AugmentMelSTFT(n_mels=MEL_BINS, sr=spec.sample_rate, win_length=STFT_WINDOW, hopsize=STFT_HOP,
                             n_fft=N_FFT, freqm=FREQ_MASK, timem=TIME_MASK, htk=MEL_HTK, fmin=MEL_FMIN,
                             fmax=MEL_FMAX, norm=MEL_NORM, fmin_aug_range=FMIN_AUG_RANGE,
                             fmax_aug_range=FMAX_AUG_RANGE)
        with torch.random.fork_rng(devices=[]):
            # random weights are the same in every process, so a restarted service matches its index
            torch.manual_seed(RANDOM_SEED)
            net = get_model(arch=spec.passt_arch, pretrained=str(weights) == OFFICIAL_WEIGHTS)
    if local:
        path = Path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(checkpoint_filter_fn(state, net), strict=True)
        except Exception as e:  # unpickling, missing keys, wrong shapes: all mean "not this model's weights"
            raise CheckpointMismatch(f"{path} is not a {spec.passt_arch} checkpoint: {str(e)[:300]}") from e
    wrapper = PasstBasicWrapper(mel=mel, net=net, mode="logits",
                                max_model_window=int(spec.window_s * 1000),
                                scene_hop=int(spec.hop_s * 1000))
    return wrapper.eval()


class PasstTagger:
    """Logits per window for whole clips, on CPU or CUDA, with hear21passt's windowing.

    `spec` says which PaSST this is (architecture, windowing, weights identity): what stores and feature
    files record of the logits it makes.
    """

    def __init__(self, model: torch.nn.Module, *, spec: ModelSpec = ModelSpec(passt_weights=RANDOM_WEIGHTS),
                 device: str = "auto", batch_windows: int = 1, precision: str = "fp32", sdpa: bool = True):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        if sdpa:
            use_sdpa_attention(self.model)
        self.spec = spec.encoders()
        self.windowing = spec.windowing
        self.batch_windows = max(1, batch_windows)
        self.precision = precision
        with precision_context(precision, self.device):  # an unknown precision fails here, not later
            pass

    @classmethod
    def load(cls, weights: str | Path, *, spec: ModelSpec = ModelSpec(), device: str = "auto",
             batch_windows: int = 1, precision: str = "fp32") -> "PasstTagger":
        if str(weights) == RANDOM_WEIGHTS and spec.passt_weights is None:
            spec = replace(spec, passt_weights=RANDOM_WEIGHTS)
        model = build_passt(weights, spec=spec)
        return cls(model, spec=spec, device=device, batch_windows=batch_windows, precision=precision)

    def windows(self, wave: np.ndarray, windowing: Windowing | None = None) -> torch.Tensor:
        """(n,) samples -> (W, L) model inputs, as hear21passt cuts them (with the tagger's windowing, or
        `windowing`)."""
        x = torch.as_tensor(np.ascontiguousarray(wave), dtype=torch.float32)
        if x.numel() < MIN_SAMPLES:
            x = F.pad(x, (0, MIN_SAMPLES - x.numel()))
        w = windowing or self.windowing
        if x.numel() <= w.window:
            return x.unsqueeze(0)  # (1, n)
        padded = F.pad(x.view(1, 1, -1), (w.pad, w.pad), mode="reflect").view(-1)
        return padded.unfold(0, w.window, w.hop)  # (W, window)

    def window_logits(self, wave: np.ndarray) -> WindowLogits:
        """(n,) float32 at 32 kHz -> the (W, 527) logits of its windows, with their times."""
        return self.window_logits_many([wave])[0]

    def logits(self, wave: np.ndarray) -> np.ndarray:
        """(n,) float32 at 32 kHz -> (527,) mean logits over windows."""
        return self.window_logits(wave).mean()

    @torch.inference_mode()
    def window_logits_many(self, waves: list[np.ndarray], *,
                           on_batch: Callable[[list[int]], None] | None = None,
                           windowing: Windowing | None = None) -> list[WindowLogits]:
        """Several clips at once: each forward pass holds up to `batch_windows` windows of any of them
        (windows of one length go together: a clip of up to one window is its own length). After each
        pass, `on_batch` is told which clip each of its windows belonged to (progress). `windowing`: cut
        other windows than the tagger's own (finer moments; hear21passt's scheme at another length and
        hop)."""
        windowing = windowing or self.windowing
        cut = [self.windows(w, windowing) for w in waves]
        out = [np.empty((c.shape[0], N_TAGS), np.float32) for c in cut]
        by_length: dict[int, list[tuple[int, int]]] = {}  # window length -> [(clip, window)]
        for i, c in enumerate(cut):
            by_length.setdefault(c.shape[1], []).extend((i, j) for j in range(c.shape[0]))
        for pairs in by_length.values():
            for start in range(0, len(pairs), self.batch_windows):
                chunk = pairs[start:start + self.batch_windows]
                x = torch.stack([cut[i][j] for i, j in chunk]).to(self.device)  # (b, L)
                with quiet_stdout(), precision_context(self.precision, self.device):
                    y = self.model(x).float().cpu().numpy()  # (b, 527)
                for (i, j), row in zip(chunk, y, strict=True):
                    out[i][j] = row
                if on_batch is not None:
                    on_batch([i for i, _ in chunk])
        spans = [window_spans(len(w), windowing) for w in waves]
        return [WindowLogits(logits=lg, starts=s, ends=e) for lg, (s, e) in zip(out, spans, strict=True)]
