"""A small GGUF reader: the metadata and the unquantised (F32 / F16) tensors.

Enough to convert an f16 embedding model without the ``gguf`` package. The layout
(GGUF version 2 and 3, little-endian): the magic ``GGUF``, the version, the tensor and
key-value counts, the key-values, the tensor descriptions (name, dimensions fastest
first, type, offset), then the tensor data from the next multiple of
``general.alignment`` (32 unless set), each tensor at its offset from there.
Tensors come back as read-only numpy views of a memory map, in numpy order
(the slowest dimension first, so a weight matrix is ``(out, in)``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# value type code -> struct format of a scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# ggml tensor type code -> numpy dtype (the only ones read here)
TENSOR_TYPES = {0: np.dtype("<f4"), 1: np.dtype("<f2")}


class GGUFError(ValueError):
    """The file is not a GGUF this reader understands; the message says what is wrong."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order: slowest dimension first
    dtype: np.dtype
    offset: int  # absolute, in bytes from the start of the file


@dataclass
class GGUFFile:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a read-only array backed by the file."""
        try:
            info = self.tensors[name]
        except KeyError:
            raise GGUFError(f"{self.path.name} has no tensor {name!r}") from None
        count = int(np.prod(info.shape, dtype=np.int64))
        data = np.memmap(self.path, dtype=info.dtype, mode="r", offset=info.offset, shape=(count,))
        return data.reshape(info.shape)


def _read(f: BinaryIO, size: int) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("the file ends inside its header (truncated?)")
    return data


def _unpack(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    return _read(f, _unpack(f, "<Q")).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item_kind, count = _unpack(f, "<I"), _unpack(f, "<Q")
        if item_kind in _SCALARS and item_kind != 7:  # numbers: one read for the whole array
            dtype = np.dtype(_SCALARS[item_kind])
            return np.frombuffer(_read(f, dtype.itemsize * count), dtype=dtype).tolist()
        return [_value(f, item_kind) for _ in range(count)]
    raise GGUFError(f"unknown metadata value type {kind}")


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse the header of ``path``: metadata and tensor descriptions (data is mapped lazily)."""
    path = Path(path)
    with path.open("rb") as f:
        if f.read(4) != MAGIC:
            raise GGUFError(f"{path.name} does not start with the GGUF magic")
        version = _unpack(f, "<I")
        if version not in (2, 3):
            raise GGUFError(f"{path.name} is GGUF version {version}; this reader knows versions 2 and 3")
        n_tensors, n_values = _unpack(f, "<Q"), _unpack(f, "<Q")
        metadata: dict[str, Any] = {}
        for _ in range(n_values):
            key = _string(f)
            metadata[key] = _value(f, _unpack(f, "<I"))
        described = []
        for _ in range(n_tensors):
            name = _string(f)
            dims = [_unpack(f, "<Q") for _ in range(_unpack(f, "<I"))]
            kind, offset = _unpack(f, "<I"), _unpack(f, "<Q")
            described.append((name, tuple(reversed(dims)), kind, offset))
        alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        start = -(-f.tell() // alignment) * alignment
    size = path.stat().st_size
    gguf = GGUFFile(path, version, metadata)
    for name, shape, kind, offset in described:
        if kind not in TENSOR_TYPES:
            raise GGUFError(f"tensor {name} of {path.name} has ggml type {kind}; only F32 (0) and F16 (1) are read")
        info = TensorInfo(name, shape, TENSOR_TYPES[kind], start + offset)
        if info.offset + int(np.prod(shape, dtype=np.int64)) * info.dtype.itemsize > size:
            raise GGUFError(f"tensor {name} runs past the end of {path.name} (truncated?)")
        gguf.tensors[name] = info
    return gguf
