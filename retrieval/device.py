"""Where models run."""

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cpu`` and ``cuda[:N]`` are taken as they are."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available on this machine")
    return torch.device(device)
