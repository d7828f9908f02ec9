"""The text encoder on ONNX Runtime: the same tokenizer, transformer, mean pooling and L2 as
``retrieval.text.TextEncoder``, exported once from the sentence-transformers folder with ``torch.onnx``.

A single short query is memory-bound on CPU (the transformer's weights are read once per query); ONNX
Runtime's fused kernels make it about 1.3x faster than torch here with embeddings equal to 1e-6 (see
``benchmarks/query_latency.py``). The export is cached next to a small JSON note naming the source weights,
and redone when they change.
"""

import json
import logging
from pathlib import Path

import numpy as np

from retrieval.durable import atomic_path, write_json_atomically
from retrieval.errors import RetrievalError
from retrieval.text import (
    clean_caption,
    quiet_loading,
    read_identity,
    require_model_folder,
    transformer_folder,
    weights_files,
)

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graph changes
OPSET = 17
INT8_BLOCK = 32  # weights per int8 scale
PRECISIONS = ("fp32", "int8")
_ST_TRANSFORMER = "sentence_transformers.models.Transformer"
_ST_POOLING = "sentence_transformers.models.Pooling"
_ST_NORMALIZE = "sentence_transformers.models.Normalize"


class UnsupportedModel(RetrievalError):
    """The sentence-transformers folder is not Transformer + mean Pooling (+ Normalize)."""


def check_mean_pooling(model_dir: Path) -> None:
    """Refuse folders whose pipeline the exported graph would not reproduce (a transformer alone, without
    modules.json, is given mean pooling by sentence-transformers: it is)."""
    if not (model_dir / "modules.json").is_file():
        return
    modules = json.loads((model_dir / "modules.json").read_text())
    types = [m["type"] for m in modules]
    if types not in ([_ST_TRANSFORMER, _ST_POOLING], [_ST_TRANSFORMER, _ST_POOLING, _ST_NORMALIZE]):
        raise UnsupportedModel(f"{model_dir}: modules {types} are not Transformer + Pooling (+ Normalize)")
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
    if modes != {"pooling_mode_mean_tokens"}:
        raise UnsupportedModel(f"{model_dir}: pooling {sorted(modes)} is not mean pooling")


def source_stamp(model_dir: Path) -> dict:
    """What an export depends on: the weights file's name (a sharded one's index), size and modification
    time (of all its files: their sum, the latest), and our graph."""
    require_model_folder(model_dir)  # one of WEIGHT_FILES is there
    files = weights_files(model_dir)
    stats = [path.stat() for path in files]
    return {"weights": files[0].relative_to(model_dir).as_posix(), "size": sum(st.st_size for st in stats),
            "mtime_ns": max(st.st_mtime_ns for st in stats), "export_version": EXPORT_VERSION, "opset": OPSET}


def _pooled_module(transformer):
    """Wrap a Hugging Face transformer as (input_ids, attention_mask) -> (B, D) unit mean-pooled vectors."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
            return torch.nn.functional.normalize(mean, dim=-1)

    return MeanPooled().eval()


def export_onnx(model_dir: str | Path, out_path: str | Path) -> Path:
    """Export the folder's transformer + mean pooling + L2 to ``out_path`` (fp32, any batch and length)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir, out_path = Path(model_dir), Path(out_path)
    stamp = source_stamp(model_dir)  # first: a folder that is no model is refused saying what it lacks
    check_mean_pooling(model_dir)
    with quiet_loading():
        st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    module = _pooled_module(st[0].auto_model)
    # two sentences of different lengths, so the traced graph keeps the padding-mask path
    sample = st.tokenizer(["a dog barks", "rain falls on a tin roof while a man whistles"], padding=True,
                          return_tensors="pt")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"}}
    log.info("exporting %s to ONNX at %s", model_dir, out_path)
    with atomic_path(out_path) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(module, (sample["input_ids"], sample["attention_mask"]), str(tmp),
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    write_json_atomically(_stamp_path(out_path), stamp, indent=None)
    return out_path


def _stamp_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def ensure_export(model_dir: Path, onnx_path: Path) -> Path:
    """The cached export when it was made from these weights, else a fresh one."""
    stamp = source_stamp(model_dir)
    note = _stamp_path(onnx_path)
    if onnx_path.is_file() and note.is_file() and json.loads(note.read_text()) == stamp:
        return onnx_path
    return export_onnx(model_dir, onnx_path)


def quantize_int8(fp32_path: Path, out_path: Path) -> Path:
    """Weight-only int8 copy of an export: each MatMul's weights in blocks of 32 with one scale per block,
    computed with int8 kernels (ONNX Runtime ``MatMulNBits``, accuracy level 4). Per-tensor dynamic int8
    (``quantize_dynamic``) ruins all-mpnet-base-v2 here (median cosine 0.89); this keeps it above 0.999."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32_path)), bits=8, block_size=INT8_BLOCK,
                                     is_symmetric=True, accuracy_level=4)
    quantizer.process()
    with atomic_path(out_path) as tmp:
        quantizer.model.save_model_to_file(str(tmp), use_external_data_format=False)
    return out_path


def ensure_int8(model_dir: Path, fp32_path: Path) -> Path:
    """The cached int8 copy when it was made from the current fp32 export, else a fresh one."""
    fp32_path = ensure_export(model_dir, fp32_path)
    out = fp32_path.with_name(fp32_path.stem + "-int8.onnx")
    stamp = {**json.loads(_stamp_path(fp32_path).read_text()), "precision": "int8"}
    note = _stamp_path(out)
    if not (out.is_file() and note.is_file() and json.loads(note.read_text()) == stamp):
        log.info("quantizing %s to weight-only int8", fp32_path)
        quantize_int8(fp32_path, out)
        write_json_atomically(note, stamp, indent=None)
    return out


def _max_seq_length(model_dir: Path, tokenizer) -> int:
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return int(tokenizer.model_max_length)


class OnnxTextEncoder:
    """Drop-in for ``TextEncoder``: ``.encode(list[str], clean=True) -> (M, D)`` unit float32 (the service
    caches query vectors in front of either: ``retrieval/query_cache.py``)."""

    def __init__(self, session, tokenizer, *, model_id: str, revision: str | None, dim: int,
                 max_seq_length: int, precision: str = "fp32"):
        self.session = session
        self.precision = precision
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.revision = revision
        self.max_seq_length = max_seq_length
        self.dim = dim

    @classmethod
    def load(cls, path: str | Path, *, model_id: str | None = None, revision: str | None = None,
             onnx_path: str | Path | None = None, precision: str = "fp32",
             threads: int = 0) -> "OnnxTextEncoder":
        """Load (exporting first when needed) the sentence-transformers folder ``path``.

        ``onnx_path`` is where the fp32 export is cached (default ``<path>/onnx/retrieval-fp32.onnx``; the
        int8 copy sits beside it); ``precision`` is ``fp32`` (equal to torch within 1e-6) or ``int8``
        (weight-only, faster, cosine to fp32 above 0.999: measure its ranking agreement before serving it);
        ``threads`` is ONNX Runtime's intra-op thread count (0: one per core). The folder's model is named
        by :func:`retrieval.text.read_identity` unless ``model_id`` names it.
        """
        import onnxruntime as ort
        from transformers import AutoTokenizer

        model_dir = require_model_folder(path)
        if model_id is None:
            model_id, revision = read_identity(model_dir)
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
        fp32_file = Path(onnx_path) if onnx_path else model_dir / "onnx" / "retrieval-fp32.onnx"
        ensure = ensure_int8 if precision == "int8" else ensure_export
        onnx_file = ensure(model_dir, fp32_file)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # no spin-waiting between queries: an idle service then leaves the cores to PaSST and to search
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        transformer = transformer_folder(model_dir)  # the folder, or its `0_Transformer/` (older layouts)
        tokenizer = AutoTokenizer.from_pretrained(str(transformer), local_files_only=True)
        dim = int(json.loads((transformer / "config.json").read_text())["hidden_size"])
        return cls(session, tokenizer, model_id=model_id, revision=revision, dim=dim,
                   max_seq_length=_max_seq_length(model_dir, tokenizer), precision=precision)

    def _run(self, sentences: list[str]) -> np.ndarray:
        """(b,) sentences -> (b, D) through the tokenizer and the session."""
        tok = self.tokenizer([s.strip() for s in sentences], padding=True, truncation="longest_first",
                             max_length=self.max_seq_length, return_tensors="np")
        feeds = {"input_ids": tok["input_ids"].astype(np.int64),
                 "attention_mask": tok["attention_mask"].astype(np.int64)}
        return self.session.run(None, feeds)[0]  # (b, D)

    def encode(self, sentences: list[str], *, batch_size: int = 64, clean: bool = True,
               progress: bool = False) -> np.ndarray:
        """(M,) sentences -> (M, D) float32 unit vectors."""
        from tqdm import tqdm

        if clean:
            sentences = [clean_caption(s) for s in sentences]
        out = np.empty((len(sentences), self.dim), dtype=np.float32)
        # sort by length so each batch pads little, as sentence-transformers does
        order = np.argsort([-len(s) for s in sentences], kind="stable")
        starts = range(0, len(sentences), batch_size)
        for start in tqdm(starts, desc="encode", unit="batch", disable=not progress):
            idx = order[start:start + batch_size]
            out[idx] = self._run([sentences[i] for i in idx])
        return out
