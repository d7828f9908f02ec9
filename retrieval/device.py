"""Where models run."""

import re

import torch

from retrieval.errors import DeviceUnavailable

DEVICES = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cpu`` and ``cuda[:N]`` are taken as they are, when this machine
    has them (DeviceUnavailable otherwise, naming what it has)."""
    if not DEVICES.fullmatch(device):
        raise DeviceUnavailable(f"device {device!r} is not one of auto, cpu, cuda or cuda:N")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {device!r} was asked for, but CUDA is not available on this "
                                    "machine: use cpu or auto")
        n = torch.cuda.device_count()
        if ":" in device and int(device.split(":")[1]) >= n:
            raise DeviceUnavailable(f"device {device!r} was asked for, but this machine has {n} CUDA "
                                    f"device(s): cuda:0 to cuda:{n - 1}")
    return torch.device(device)
