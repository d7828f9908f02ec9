"""The settings: one object, read from the environment (prefix ``RETRIEVAL_``) by the composition root
(:func:`app.compose.load_settings`) and validated at start-up, cross-field mistakes included. Nothing below
`app/` and `cli/` reads it: the root turns it into objects and passes explicit arguments down."""

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.layout import qdrant_name_taken
from retrieval.config import PASST_FILENAME

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # of the commands and the ingest worker

QDRANT_COLLECTION = re.compile(r"[A-Za-z0-9_][\w.-]{0,62}")


def configure_logging(level: int) -> None:
    """How the commands and the service's ingest worker log: LOG_FORMAT at `level`; FAISS's loader, which
    tells at INFO of every SIMD build it did not find ("Could not load library ..."), only when debugging."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    if level > logging.DEBUG:
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)


class Settings(BaseSettings):
    # an empty variable is an unset one (compose passes `RETRIEVAL_X=` for what the operator leaves out; a
    # path read as "" named the current folder); numbers are finite
    model_config = SettingsConfigDict(env_prefix="RETRIEVAL_", extra="ignore", env_ignore_empty=True,
                                      allow_inf_nan=False)

    data_dir: Path = Field(Path("data"), description="index, metadata and uploaded audio live here")
    models_dir: Path = Field(Path("models"), description="where `retrieval models fetch` puts weights")
    text_model: str = Field(
        "all-mpnet-base-v2", description="folder of a sentence-transformers model, absolute or in models_dir"
    )
    passt_weights: str = Field(
        PASST_FILENAME, description="PaSST checkpoint, absolute or in models_dir; 'random' for tests only"
    )
    passt_sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="pin: `models fetch` refuses other PaSST weights"
    )
    passt_precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="PaSST compute precision: fp32 (exact), bf16 (CPU or CUDA autocast), fp16 (CUDA)"
    )
    checkpoint: Path | None = Field(None, description="trained head; without one the zero-shot model serves")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto (CUDA when present), cpu, or cuda[:N]")
    text_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="query encoder runtime: auto (onnx when the device is the CPU, torch on CUDA), "
                            "torch, or onnx (ONNX Runtime on CPU, exported once)"
    )
    query_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="text queries whose vectors are kept (least recently used "
                                              "dropped first; 3 KB each at 768 dimensions); 0 disables"
    )
    batch_windows: int = Field(1, ge=1, le=64, description="PaSST windows per forward pass")
    moment_window_s: float | None = Field(
        None, ge=1.0, le=10.0, description="moments from a second, finer PaSST pass over windows this long, "
                                           "seconds (unset: moments of the PaSST windows, at no cost)")
    moment_hop_s: float | None = Field(None, gt=0, le=10.0, description="the finer pass's hop, seconds")
    ingest_worker: Literal["auto", "process", "thread"] = Field(
        "auto", description="where uploads are tagged: a worker process at lower priority (auto, except with "
                            "embedded Qdrant, which one process owns) or a thread of the service")
    ingest_threads: int = Field(1, ge=1, le=256, description="PaSST threads of the ingest worker")
    index_threads: int = Field(
        0, ge=0, le=256, description="torch CPU threads of `index add` and `index backfill-windows`: 0 "
                                     "(auto) is one a core on the CPU and 4 with CUDA, where more only slow "
                                     "the decoding process (OMP_NUM_THREADS, when set, is kept)")
    index_decoders: int = Field(
        0, ge=0, le=64, description="processes of `index add` that decode the next files while PaSST tags "
                                    "these (0: none). Beside a GPU, where a short file's decoding, hashing "
                                    "and tags cost the CPU more than PaSST costs the GPU, give it spare "
                                    "cores")
    ingest_nice: int = Field(10, ge=0, le=19, description="how much lower the worker process's scheduling "
                                                          "priority is than the service's (os.nice)")
    text_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="ONNX query encoder: fp32 (as torch) or int8 (faster; top-10 agreement ~0.99)"
    )
    index_kind: Literal["auto", "flat", "flat16", "hnsw", "ivf16", "ivf8"] = Field(
        "auto", description="the clips' index (faiss backend): auto (flat16 below 1,000,000 clips, then "
                            "ivf16), flat16 (exact search over float16 vectors: same top-10 as flat on real "
                            "captions), flat (float32), HNSW, or ivf16 / ivf8 (lists of similar clips, "
                            "approximate: scans nprobe of them; ivf8 rescored by the stored vectors)"
    )
    window_index_kind: Literal["auto", "flat16", "ivf16", "ivf8", "hnsw"] = Field(
        "auto", description="the windows' index (faiss backend): auto (flat16 below 250,000 windows, about "
                            "170 hours, then ivf16), flat16 (exact), ivf16 (lists of similar windows, "
                            "approximate: scans nprobe of them), ivf8 (ivf16 in half the memory, 8-bit "
                            "codes rescored by the stored vectors), hnsw")
    ivf_nprobe: int | None = Field(
        None, ge=1, le=65536, description="lists an IVF search (of clips or windows) scans, of about "
                                          "sqrt(N) (unset: the index's default, IVF_NPROBE): more is slower "
                                          "and nearer exact")
    search_threads: int = Field(
        1, ge=1, le=256, description="FAISS OpenMP threads per search (1: no per-query overhead)"
    )
    store_backend: Literal["faiss", "qdrant"] = Field("faiss", description="vector store backend")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset with qdrant = embedded")
    qdrant_api_key: SecretStr | None = Field(
        None, description="the Qdrant server's API key, where it asks for one (Qdrant Cloud, "
                          "QDRANT__SERVICE__API_KEY)")
    qdrant_collection: str = Field("clips",
                                   description="the Qdrant collection (an alias) of the clips: letters, "
                                               "digits, `_`, `.`, `-`, up to 63, not ending in `-windows` or "
                                               "`-g<N>` (the names of its windows and generations)")
    qdrant_window_quantization: Literal["none", "int8"] = Field(
        "none", description="qdrant backend: int8 scalar quantization of the windows' vectors, kept in RAM "
                            "with the float16 originals on disk, searches rescored on the originals; applies "
                            "when a windows collection is created (an existing one keeps how it was made)")
    api_key: SecretStr | None = Field(None, description="key for write endpoints (X-API-Key or Bearer)")
    protect_reads: bool = Field(False, description="require the API key for reads too")
    link_ttl_s: int = Field(24 * 3600, ge=60, le=366 * 24 * 3600,
                            description="with protect_reads: how long a signed audio link (an audio_url or "
                                        "excerpt_url the service answers) reads without the key, seconds")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins (none)")
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="largest accepted upload")
    max_duration_s: float = Field(600.0, gt=0, description="longest accepted upload (POST /audio), seconds")
    max_example_duration_s: float = Field(
        60.0, gt=0, description="longest example a search by audio takes (POST /search/audio), seconds: the "
        "service runs PaSST on it while the client waits (about 2 s a 10 s window on two CPU cores)"
    )
    max_index_duration_s: float = Field(
        43200.0, gt=0, description="longest file `index add` and the Ray extraction accept, seconds (12 h); "
        "long recordings are read window by window, in bounded memory"
    )
    max_channels: int = Field(6, ge=1, le=64, description="most channels accepted (5.1 = 6); mixed to mono")
    host: str = Field("127.0.0.1", description="`retrieval serve`: the address to listen on")
    port: int = Field(8000, ge=1, le=65535, description="`retrieval serve`: the port to listen on")

    @field_validator("qdrant_collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        if not QDRANT_COLLECTION.fullmatch(v):
            raise ValueError(f"{v!r} is no collection name: letters, digits, `_`, `.` and `-`, up to 63")
        if qdrant_name_taken(v):
            raise ValueError(f"{v!r} ends as the names of a collection's windows, generations and restores "
                             "do (`-windows`, `-g<N>`, `-restoring`): choose another")
        return v

    @field_validator("passt_sha256", "qdrant_url", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        # given empty as an argument (the environment's empty values are unset already)
        return v or None

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        """Settings that contradict each other fail at start, saying which ones and what to do."""
        problems = []
        if self.text_precision != "fp32" and self.text_backend == "torch":
            problems.append(f"RETRIEVAL_TEXT_PRECISION={self.text_precision} needs "
                            "RETRIEVAL_TEXT_BACKEND=onnx (the torch encoder runs fp32)")
        if self.text_precision != "fp32" and self.text_backend == "auto" and self.device.startswith("cuda"):
            problems.append(f"RETRIEVAL_TEXT_PRECISION={self.text_precision} needs the ONNX encoder, but "
                            "RETRIEVAL_TEXT_BACKEND=auto uses torch (fp32) on "
                            f"RETRIEVAL_DEVICE={self.device}")
        if self.text_backend == "onnx" and self.device.startswith("cuda"):
            problems.append("RETRIEVAL_TEXT_BACKEND=onnx runs on the CPU only; use torch with "
                            f"RETRIEVAL_DEVICE={self.device}")
        if self.passt_precision == "fp16" and self.device == "cpu":
            problems.append("RETRIEVAL_PASST_PRECISION=fp16 needs CUDA but RETRIEVAL_DEVICE=cpu; use bf16 "
                            "on the CPU")
        if self.store_backend == "faiss" and self.qdrant_url:
            problems.append("RETRIEVAL_QDRANT_URL is set but RETRIEVAL_STORE_BACKEND=faiss; set the backend "
                            "to qdrant or unset the URL")
        if self.qdrant_api_key is not None and not self.qdrant_url:
            problems.append("RETRIEVAL_QDRANT_API_KEY is set but RETRIEVAL_QDRANT_URL is not: the key is a "
                            "server's (the embedded store has none)")
        # the default "auto" (and "flat", the exact search, as a store's tests and older setups name it) go
        # unused with Qdrant; any other explicit kind is a mistake
        explicit_kind = "index_kind" in self.model_fields_set
        if self.store_backend == "qdrant" and self.index_kind not in ("auto", "flat") and explicit_kind:
            problems.append(f"RETRIEVAL_INDEX_KIND={self.index_kind} applies to the faiss backend only, not "
                            "RETRIEVAL_STORE_BACKEND=qdrant (Qdrant builds its own index)")
        if self.store_backend == "qdrant" and {"window_index_kind", "ivf_nprobe"} & self.model_fields_set:
            problems.append("RETRIEVAL_WINDOW_INDEX_KIND and RETRIEVAL_IVF_NPROBE apply to the faiss backend "
                            "only, not RETRIEVAL_STORE_BACKEND=qdrant")
        if self.store_backend == "faiss" and self.qdrant_window_quantization != "none":
            problems.append(f"RETRIEVAL_QDRANT_WINDOW_QUANTIZATION={self.qdrant_window_quantization} applies "
                            "to the qdrant backend only, not RETRIEVAL_STORE_BACKEND=faiss")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            problems.append(f"RETRIEVAL_DATA_DIR={self.data_dir} is not a folder")
        if (self.moment_window_s is None) != (self.moment_hop_s is None):
            problems.append("RETRIEVAL_MOMENT_WINDOW_S and RETRIEVAL_MOMENT_HOP_S are set together (a finer "
                            "moment windowing) or not at all")
        elif self.moment_hop_s is not None and self.moment_window_s is not None \
                and self.moment_hop_s > self.moment_window_s:
            problems.append(f"RETRIEVAL_MOMENT_HOP_S={self.moment_hop_s} is longer than "
                            f"RETRIEVAL_MOMENT_WINDOW_S={self.moment_window_s}: windows would leave gaps")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def models_path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() or p.exists() else self.models_dir / p

    def as_given(self) -> dict:
        """What was given (by the environment, a .env file or arguments), to make the same settings in another
        process (the ingest worker's): `Settings(**settings.as_given())`. Every value dumped would read as set
        explicitly, and settings of the other backend at their defaults would then be refused (the worker of
        a Qdrant server's store died at its start: RETRIEVAL_WINDOW_INDEX_KIND applies to faiss only)."""
        return self.model_dump(exclude_unset=True)
