"""passt_runtime against hear21passt itself: SDPA attention on one instance only, precision contexts, and
quiet_stdout with several threads at once. Random-weight PaSST, windows scaled down to 1 s (cheap on CPU)."""

import contextlib
import io
import logging
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hear21passt.base import get_scene_embeddings
from hear21passt.models.passt import Attention
from hear21passt.wrapper import PasstBasicWrapper

from retrieval.passt_runtime import PRECISIONS, precision_context, quiet_stdout, use_sdpa_attention
from retrieval.tagger import build_passt
from tests.audio_fixtures import clicks, noise, sine

HEAR21PASST_FORWARD = Attention.forward  # the class's own, as imported before any test ran
LOGGER = "retrieval.passt_runtime"


def small(model) -> PasstBasicWrapper:
    """The same mel and net with hear21passt's windowing scaled down: 1 s windows every 0.25 s."""
    return PasstBasicWrapper(mel=model.mel, net=model.net, mode="logits", max_model_window=1000,
                             scene_hop=250).eval()


def scene(model, wave: np.ndarray) -> np.ndarray:
    with quiet_stdout():
        return get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].float().numpy()


def attentions(model) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """2 torch threads on a busy 2-core machine are several times slower than 1 (benchmarks/RESULTS.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair(one_thread):
    """(hear21passt as it is, the same weights with SDPA attention, the count use_sdpa_attention returned)."""
    with quiet_stdout():
        reference, fast = build_passt("random"), build_passt("random")
    count = use_sdpa_attention(fast)
    return reference, fast, count


def test_sdpa_switches_every_block_once(pair):
    _, fast, count = pair
    assert count == len(fast.net.blocks) == 12
    bound = [m.forward for m in attentions(fast)]
    assert all("forward" in m.__dict__ for m in attentions(fast))
    assert use_sdpa_attention(fast) == 12  # idempotent: the same count, nothing rebound
    assert [m.forward for m in attentions(fast)] == bound
    assert all(a is b for a, b in zip([m.__dict__["forward"] for m in attentions(fast)], bound, strict=True))
    assert use_sdpa_attention(torch.nn.Linear(2, 2)) == 0


def test_single_window_matches_hear21passt(pair):
    reference, fast, _ = pair
    wave = sine(440.0, seconds=1.0) + noise(seconds=1.0)  # one 1 s window
    want = scene(small(reference), wave)
    got = scene(small(fast), wave)
    assert np.abs(got - want).max() <= 1e-5


def test_multi_window_matches_hear21passt_loop(pair):
    reference, fast, _ = pair
    wave = np.concatenate([sine(330.0, seconds=1.0), clicks(seconds=1.0)])  # 2 s -> 9 windows of 1 s
    want = scene(small(reference), wave)
    got = scene(small(fast), wave)
    assert np.abs(got - want).max() <= 1e-5


def test_batched_windows_match_one_at_a_time(pair):
    """Several windows in one forward pass (the batched indexing path) against hear21passt's loop."""
    reference, fast, _ = pair
    windows = torch.from_numpy(np.stack([noise(seconds=1.0, seed=s) for s in range(4)]))  # (4, 32000)
    with torch.no_grad(), quiet_stdout():
        want = torch.cat([small(reference)(w[None]) for w in windows])
        got = small(fast)(windows)
    assert (got - want).abs().max().item() <= 1e-5


def test_a_model_built_without_the_call_keeps_hear21passt_attention(pair, monkeypatch):
    reference, fast, _ = pair
    with quiet_stdout():
        later = build_passt("random")  # built after another model was switched
    assert Attention.forward is HEAR21PASST_FORWARD
    assert HEAR21PASST_FORWARD.__module__ == "hear21passt.models.passt"
    for model in (reference, later):
        assert all("forward" not in m.__dict__ for m in attentions(model))
        assert all(m.forward.__func__ is HEAR21PASST_FORWARD for m in attentions(model))

    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    x = torch.randn(1, 10, 768)
    with torch.no_grad():
        want = attentions(later)[0](x)
        assert calls == []  # hear21passt's hand-written attention, not SDPA
        got = attentions(fast)[0](x)
    assert len(calls) == 1 and calls[0]["scale"] == attentions(fast)[0].scale == 64 ** -0.5
    assert (got - want).abs().max().item() <= 1e-5


def test_sdpa_dropout_only_when_training(pair, monkeypatch):
    _, fast, _ = pair
    seen = []
    real = F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        seen.append(kwargs["dropout_p"])
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    module = attentions(fast)[0]
    monkeypatch.setattr(module.attn_drop, "p", 0.25)
    x = torch.randn(1, 6, 768)
    with torch.no_grad():
        module(x)
        module.train()
        try:
            module(x)
        finally:
            module.eval()
    assert seen == [0.0, 0.25]


def test_bf16_is_finite_and_close_to_fp32(pair):
    _, fast, _ = pair
    wave = noise(seconds=0.5, seed=7)  # one short window: bf16 may be emulated (slow) on CPUs without AVX-512
    fp32 = scene(small(fast), wave)
    with precision_context("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        bf16 = scene(small(fast), wave)
    assert not torch.is_autocast_enabled("cpu")
    deviation = float(np.abs(bf16 - fp32).max())
    assert np.isfinite(bf16).all() and deviation < 0.1, deviation
    assert deviation > 0  # it did run in reduced precision


def test_precision_values():
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    cpu = torch.device("cpu")
    with precision_context("fp32", cpu):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="CUDA"):
        precision_context("fp16", cpu)
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        precision_context("int8", cpu)
    with warnings.catch_warnings():  # constructing a CUDA autocast without CUDA only warns
        warnings.simplefilter("ignore")
        ctx = precision_context("fp16", torch.device("cuda"))
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
        ctx = precision_context("bf16", "cuda:0")
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def unwrap(stream):
    return getattr(stream, "target", stream)


def test_quiet_stdout_is_per_thread(capsys, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    stream = sys.stdout  # pytest's capture stream for this test
    both_inside, c_printed, a_left, b_printed, b_may_leave = (threading.Event() for _ in range(5))
    inside = threading.Barrier(3)
    errors = []

    def quiet_a():
        with quiet_stdout():
            print("secret from a")
            inside.wait(5)
            c_printed.wait(5)
            print("secret from a, again")
        a_left.set()

    def quiet_b():
        with quiet_stdout():
            print("secret from b")
            inside.wait(5)
            a_left.wait(5)
            print("secret from b after a left")  # a left while b is still inside: b stays quiet
            b_printed.set()
            b_may_leave.wait(5)
        print("b is loud again")

    def loud_c():
        inside.wait(5)  # a and b are both inside quiet_stdout now
        print("c prints while a and b are quiet")
        c_printed.set()
        b_printed.wait(5)
        print("c prints while b is quiet")
        b_may_leave.set()

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
        return threading.Thread(target=run)

    threads = [guarded(f) for f in (quiet_a, quiet_b, loud_c)]
    for t in threads:
        t.start()
    print("main prints while the threads run")
    for t in threads:
        t.join(10)
    assert not errors and not any(t.is_alive() for t in threads)

    out = capsys.readouterr().out
    assert "secret" not in out
    for line in ("c prints while a and b are quiet", "c prints while b is quiet", "b is loud again",
                 "main prints while the threads run"):
        assert line in out
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    for line in ("secret from a", "secret from a, again", "secret from b", "secret from b after a left"):
        assert f"stdout: {line}" in logged
    assert unwrap(sys.stdout) is stream  # still writing to the stream pytest gave this test
    print("afterwards")
    assert capsys.readouterr().out == "afterwards\n"


def test_quiet_stdout_nests_and_follows_a_replaced_stdout(capsys):
    with quiet_stdout():
        with quiet_stdout():
            print("inner")
        print("outer")
    print("loud")
    assert capsys.readouterr().out == "loud\n"
    before = sys.stdout
    with contextlib.redirect_stdout(io.StringIO()) as buf:  # someone swaps sys.stdout: it is wrapped anew
        with quiet_stdout():
            print("hidden")
        print("shown")
    assert buf.getvalue() == "shown\n"
    assert sys.stdout is before
    with quiet_stdout():
        sys.stdout.write("partial line, no newline")
        sys.stdout.flush()
    assert capsys.readouterr().out == ""


def test_quiet_stdout_lets_a_stdout_log_handler_through(capsys):
    with quiet_stdout():
        pass
    assert sys.stdout is not unwrap(sys.stdout)  # the proxy is installed: the handler will write through it
    handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger(LOGGER)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with quiet_stdout():
            print("shape 1x527")  # -> log.debug -> a handler writing to sys.stdout: no recursion
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert capsys.readouterr().out == "stdout: shape 1x527\n"


def test_hear21passt_shape_prints_are_silenced(pair, capsys, caplog, monkeypatch):
    import hear21passt.models.passt as passt

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    monkeypatch.setattr(passt, "first_RUN", True)  # it prints tensor shapes on the first forward pass
    _, fast, _ = pair
    scene(small(fast), noise(seconds=0.3))
    assert capsys.readouterr().out == ""
    assert any("patch_embed" in r.getMessage() for r in caplog.records if r.name == LOGGER)
