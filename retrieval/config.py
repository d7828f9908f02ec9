"""The fixed numbers of the method (PaSST-MPnet-tags, DCASE 2022 Task 6b), named once."""

from dataclasses import asdict, dataclass

SAMPLE_RATE = 32_000  # PaSST's input rate, in Hz: every clip is decoded and resampled to it
N_TAGS = 527  # the AudioSet classes PaSST was trained on: one logit each

# PaSST's mel front end (hear21passt's AugmentMelSTFT), as hear21passt's base.py builds it for this model
MEL_BINS = 128  # mel filters: the "f128" in the checkpoint's name, the height of the spectrogram
STFT_WINDOW = 800  # samples per STFT window (25 ms at 32 kHz), a Hann window
STFT_HOP = 320  # samples between STFT frames (10 ms at 32 kHz)
N_FFT = 1024  # FFT size: each 800-sample window is zero-padded to it
MEL_FMIN = 0.0  # lowest mel filter edge, in Hz
# highest mel filter edge; None: hear21passt takes SAMPLE_RATE // 2 - FMAX_AUG_RANGE // 2 (15 kHz)
MEL_FMAX: float | None = None
MEL_HTK = False  # passed as hear21passt passes it (its Kaldi mel banks do not read it)
MEL_NORM = 1  # passed as hear21passt passes it (its Kaldi mel banks do not read it)
FREQ_MASK = 48  # SpecAugment's widest frequency mask, in mel bins (training mode only: the tagger is in eval)
TIME_MASK = 192  # SpecAugment's widest time mask, in frames (training mode only)
FMIN_AUG_RANGE = 10  # random upward shift of the lowest filter edge, in Hz (training mode only)
FMAX_AUG_RANGE = 2000  # random shift of the highest filter edge, in Hz; with MEL_FMAX None it also sets fmax
# PaSST's patch embedding spans 16 STFT frames: the fewest a clip can have to go through the model at all
MIN_FRAMES = 16

PASST_ARCH = "passt_s_swa_p16_128_ap476"
PASST_URL = (
    "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"
)
PASST_FILENAME = "passt-s-f128-p16-s10-ap.476-swa.pt"
# upstream publishes no checksum; several independent projects pinning this release asset publish these
PASST_SHA256 = "302903fa8c4aee817b11dc982da0b29aaf8d11a3e722420476d0a12c9db70c2c"
PASST_SIZE = 344_665_734

MPNET_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_REVISION = "e8c3b32edf5434bc2275fc9bab85f82640a19130"
MPNET_SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_SAFETENSORS_SIZE = 437_971_872

DEFAULT_LAMBDA = 0.8


@dataclass(frozen=True)
class Windowing:
    """How a clip is cut for PaSST: hear21passt's scene-embedding scheme, in seconds."""

    window_s: float = 10.0
    hop_s: float = 2.5
    sample_rate: int = SAMPLE_RATE

    @property
    def window(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def pad(self) -> int:
        # hear21passt reflect-pads half a window on each side
        return self.window // 2

    def n_windows(self, n_samples: int) -> int:
        if n_samples <= self.window:
            return 1
        return (n_samples + 2 * self.pad - self.window) // self.hop + 1

    def as_dict(self) -> dict:
        return asdict(self)
