"""The configurations of a training run and of the paper's whole recipe, importable without torch (the
command line takes its option defaults from them)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from retrieval.config import DEFAULT_LAMBDA

MARGIN = 0.4  # the triplet loss's margin, the paper's value
# moment evaluation: windows scoring at least min + this * (max - min) of their clip's scores become moments
# (a choice, not tuned on any benchmark's data; training/evaluate_moments.py)
MOMENT_RELATIVE_THRESHOLD = 0.8


@dataclass
class TrainConfig:
    """The paper's values by default; ``AUTHOR_CODE`` holds those of the author's published code."""

    batch_size: int = 128
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.0
    margin: float = MARGIN
    lam: float = DEFAULT_LAMBDA
    plateau_factor: float = 0.5  # ReduceLROnPlateau on the validation loss
    plateau_patience: int = 5
    plateau_threshold: float = 1e-4
    plateau_threshold_mode: Literal["rel", "abs"] = "rel"
    seed: int = 0
    init: Path | None = None  # start from this checkpoint (AudioCaps -> Clotho)
    init_optimizer: bool = False  # and carry its Adam moments (the learning rate restarts at `lr`)
    device: str = "cpu"


AUTHOR_CODE = {"batch_size": 32, "plateau_factor": 0.1, "plateau_threshold": 0.01,
               "plateau_threshold_mode": "abs"}


@dataclass
class Recipe:
    seeds: tuple[int, ...] = (0, 1)
    clotho_epochs: int = 30
    audiocaps_epochs: int = 100
    base: TrainConfig = field(default_factory=TrainConfig)  # batch, lr, scheduler... of every run
    skip_missing: bool = True  # AudioCaps clips whose video is gone are left out
