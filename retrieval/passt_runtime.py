"""Running hear21passt's PaSST faster without changing what it computes.

* ``use_sdpa_attention`` swaps the hand-written attention of each ``Attention`` module of one model
  (``softmax(q @ k.T * scale) @ v``) for ``torch.nn.functional.scaled_dot_product_attention``, on those
  instances only; the logits stay within 1e-5 of hear21passt's (the tests hold it to that), and a 10 s window
  takes ~1.7x less time on CPU (benchmarks/indexing_throughput.py).
* ``precision_context`` is the opt-in reduced precision (bf16 autocast on CPU or CUDA, fp16 on CUDA).
* ``quiet_stdout`` silences hear21passt's ``print`` calls for the calling thread only, so that concurrent
  requests can run PaSST while other threads still print.
"""

import contextlib
import logging
import sys
import threading
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")

_SDPA_FLAG = "_passt_runtime_sdpa"


def _sdpa_forward(self, x: torch.Tensor) -> torch.Tensor:
    """hear21passt's ``Attention.forward``, the attention itself done by SDPA (same scale, same dropout)."""
    B, N, C = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    dropout = self.attn_drop.p if self.training else 0.0
    x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
    x = x.transpose(1, 2).reshape(B, N, C)
    x = self.proj(x)
    x = self.proj_drop(x)
    return x


def _attention_class() -> type:
    from hear21passt.models.passt import Attention

    return Attention


def use_sdpa_attention(model: torch.nn.Module) -> int:
    """Make every hear21passt ``Attention`` module inside ``model`` compute with SDPA; -> how many there are.

    The new forward is bound on each instance (``module.forward``), never on the class: another PaSST in the
    same process keeps hear21passt's own attention. Idempotent: a second call changes nothing and returns the
    same count (the modules of ``model`` that now use SDPA: 12 for passt_s). 0 means no hear21passt attention
    was found (a model of something else), which is logged as a warning.
    """
    attention = _attention_class()
    total = new = 0
    for name, module in model.named_modules():
        if not isinstance(module, attention):
            continue
        total += 1
        if not getattr(module, _SDPA_FLAG, False):
            setattr(module, "forward", types.MethodType(_sdpa_forward, module))  # noqa: B010 (this instance only)
            setattr(module, _SDPA_FLAG, True)
            new += 1
            log.debug("SDPA attention in %s", name or type(model).__name__)
    if total == 0:
        log.warning("use_sdpa_attention: no hear21passt Attention module in %s", type(model).__name__)
    elif new:
        log.info("PaSST attention: %d of %d module(s) switched to scaled_dot_product_attention", new, total)
    return total


def precision_context(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context to run PaSST under for ``precision`` on ``device``.

    ``"fp32"``: nothing (exact). ``"bf16"``: ``torch.autocast(device.type, dtype=torch.bfloat16)``, on CPU or
    CUDA. ``"fp16"``: ``torch.autocast("cuda", dtype=torch.float16)``, CUDA only. Anything else, or fp16 on a
    device that is not CUDA, raises ``ValueError``.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError(f"precision 'fp16' needs a CUDA device; got {device} (use 'bf16' or 'fp32')")
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, dtype=torch.bfloat16)


# -- quiet_stdout --------------------------------------------------------------------------------------------

_quiet = threading.local()  # .depth: how deep the thread is in quiet_stdout; .pending: its unfinished line
_install_lock = threading.Lock()


def _depth() -> int:
    return getattr(_quiet, "depth", 0)


def _log_lines(text: str, *, final: bool = False) -> None:
    """Send complete lines (every line when ``final``) of a quiet thread's output to the debug log."""
    text = getattr(_quiet, "pending", "") + text
    *lines, rest = text.split("\n")
    if final and rest:
        lines, rest = [*lines, rest], ""
    _quiet.pending = rest
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return
    _quiet.logging = True  # a logging handler writing to sys.stdout from here is forwarded, not re-logged
    try:
        for line in lines:
            log.debug("stdout: %s", line[:2000])
    finally:
        _quiet.logging = False


class _ThreadQuietStdout:
    """A ``sys.stdout`` forwarding to the stream it wrapped, but not the writes of threads in quiet_stdout."""

    def __init__(self, target):
        self._target = target

    @property
    def target(self):
        return self._target

    def write(self, text: str) -> int:
        if _depth() > 0 and not getattr(_quiet, "logging", False):
            _log_lines(text)
            return len(text)
        return self._target.write(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _depth() == 0 or getattr(_quiet, "logging", False):
            self._target.flush()

    def __getattr__(self, name):  # encoding, isatty, fileno, buffer, ...: the wrapped stream's
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self._target!r}>"


def _ensure_installed() -> None:
    """Wrap the current ``sys.stdout`` once; again only when someone has replaced it since (pytest does)."""
    if isinstance(sys.stdout, _ThreadQuietStdout):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadQuietStdout) and sys.stdout is not None:
            sys.stdout = _ThreadQuietStdout(sys.stdout)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence ``print`` (any write to ``sys.stdout``) in the calling thread only; the text goes to the debug
    log. Other threads print as usual, several threads may be inside at once, and it nests.

    Unlike ``contextlib.redirect_stdout`` it does not swap ``sys.stdout`` per call: a proxy is installed once
    (lazily) and stays; it forwards every write of a thread that is not inside ``quiet_stdout``.
    """
    _ensure_installed()
    _quiet.depth = _depth() + 1
    try:
        yield
    finally:
        _quiet.depth -= 1
        if _quiet.depth == 0:
            _log_lines("", final=True)
