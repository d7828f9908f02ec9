"""The frozen PaSST AudioSet tagger: audio in, 527 pre-sigmoid logits out (hear21passt's scheme).

Clips up to one window take one forward pass on the raw samples; longer clips are reflect-padded by half a
window on each side, cut into windows every hop, and the logits are averaged over windows, exactly as
hear21passt's ``get_scene_embeddings``. ``batch_windows`` > 1 runs several windows in one forward pass; the
tests hold it to hear21passt's loop within 1e-5.
"""

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.config import N_TAGS, PASST_ARCH, SAMPLE_RATE, Windowing
from retrieval.device import resolve_device
from retrieval.errors import CheckpointMismatch, ModelNotFound

log = logging.getLogger(__name__)

# PaSST's patch embedding needs 16 STFT frames of hop 320: shorter clips cannot go through hear21passt at
# all, so they are zero-padded up to this length (the only place we differ from it).
MIN_SAMPLES = 16 * 320
RANDOM_WEIGHTS = "random"
OFFICIAL_WEIGHTS = "official"
RANDOM_SEED = 0

# hear21passt warns on every clip that is not exactly 998 frames, and about torch API deprecations
warnings.filterwarnings("ignore", message="Input image size", module="hear21passt")
warnings.filterwarnings("ignore", category=FutureWarning, module="hear21passt")
warnings.filterwarnings("ignore", message="stft with return_complex=False", category=UserWarning)


@contextlib.contextmanager
def _quiet():
    """hear21passt prints model summaries and shapes to stdout; send them to the debug log instead."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    if buf.getvalue().strip():
        log.debug("hear21passt: %s", buf.getvalue().strip()[:2000])


def build_passt(weights: str | Path, *, arch: str = PASST_ARCH, windowing: Windowing = Windowing()):
    """Build hear21passt's ``PasstBasicWrapper`` in logits mode.

    ``weights`` is a local checkpoint path, ``"official"`` (download from the URL hear21passt uses) or
    ``"random"`` (untrained weights, for tests only).
    """
    local = str(weights) not in (OFFICIAL_WEIGHTS, RANDOM_WEIGHTS)
    if local and not Path(weights).is_file():  # before the slow imports: a missing file fails at once
        raise ModelNotFound(f"PaSST weights not found at {weights}; run `retrieval models fetch`")
    from hear21passt.models.passt import checkpoint_filter_fn, get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    with _quiet():
        mel = AugmentMelSTFT(n_mels=128, sr=SAMPLE_RATE, win_length=800, hopsize=320, n_fft=1024, freqm=48,
                             timem=192, htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10,
                             fmax_aug_range=2000)
        with torch.random.fork_rng(devices=[]):
            # random weights are the same in every process, so a restarted service matches its index
            torch.manual_seed(RANDOM_SEED)
            net = get_model(arch=arch, pretrained=str(weights) == OFFICIAL_WEIGHTS)
    if local:
        path = Path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(checkpoint_filter_fn(state, net), strict=True)
        except Exception as e:  # unpickling, missing keys, wrong shapes: all mean "not this model's weights"
            raise CheckpointMismatch(f"{path} is not a {arch} checkpoint: {str(e)[:300]}") from e
    wrapper = PasstBasicWrapper(mel=mel, net=net, mode="logits",
                                max_model_window=int(windowing.window_s * 1000),
                                scene_hop=int(windowing.hop_s * 1000))
    return wrapper.eval()


class PasstTagger:
    """Logits for whole clips, on CPU or CUDA, with hear21passt's windowing."""

    def __init__(self, model: torch.nn.Module, *, arch: str = PASST_ARCH, windowing: Windowing = Windowing(),
                 device: str = "auto", batch_windows: int = 1):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.arch = arch
        self.windowing = windowing
        self.batch_windows = max(1, batch_windows)

    @classmethod
    def load(cls, weights: str | Path, *, arch: str = PASST_ARCH, windowing: Windowing = Windowing(),
             device: str = "auto", batch_windows: int = 1) -> "PasstTagger":
        model = build_passt(weights, arch=arch, windowing=windowing)
        return cls(model, arch=arch, windowing=windowing, device=device, batch_windows=batch_windows)

    def describe(self) -> dict:
        return {"passt_arch": self.arch, **self.windowing.as_dict()}

    def windows(self, wave: np.ndarray) -> torch.Tensor:
        """(n,) samples -> (W, L) model inputs, as hear21passt cuts them."""
        x = torch.as_tensor(np.ascontiguousarray(wave), dtype=torch.float32)
        if x.numel() < MIN_SAMPLES:
            x = F.pad(x, (0, MIN_SAMPLES - x.numel()))
        w = self.windowing
        if x.numel() <= w.window:
            return x.unsqueeze(0)  # (1, n)
        padded = F.pad(x.view(1, 1, -1), (w.pad, w.pad), mode="reflect").view(-1)
        return padded.unfold(0, w.window, w.hop)  # (W, window)

    @torch.inference_mode()
    def logits(self, wave: np.ndarray) -> np.ndarray:
        """(n,) float32 at 32 kHz -> (527,) mean logits over windows."""
        segments = self.windows(wave)
        total = torch.zeros(N_TAGS, dtype=torch.float64)
        with _quiet():
            for chunk in segments.split(self.batch_windows):
                out = self.model(chunk.to(self.device))  # (b, 527)
                total += out.double().sum(0).cpu()
        return (total / segments.shape[0]).float().numpy()
