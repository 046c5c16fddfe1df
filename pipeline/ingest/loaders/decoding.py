"""Bytes to text: a byte-order mark first, then strict UTF-8.

A BOM names its encoding for certain, so it is honoured before the binary check
(UTF-16 text is full of NUL bytes). Without one, text must be UTF-8: a file
decoded with a guessed encoding would silently index garbage, so it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from lcrag.pipeline.ingest.loaders.base import SourceFormatError

BINARY_PROBE = 8192  # bytes searched for NUL by the binary check


@dataclass(frozen=True)
class Bom:
    mark: bytes
    codec: str
    label: str  # the name used in messages


# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
BOMS: tuple[Bom, ...] = (
    Bom(b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"),
    Bom(b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
    Bom(b"\xef\xbb\xbf", "utf-8", "UTF-8"),
    Bom(b"\xff\xfe", "utf-16-le", "UTF-16"),
    Bom(b"\xfe\xff", "utf-16-be", "UTF-16"),
)
NO_BOM = Bom(b"", "utf-8", "UTF-8")


def sniff_bom(data: bytes) -> Bom:
    """The byte-order mark ``data`` starts with, or ``NO_BOM`` (plain UTF-8)."""
    return next((bom for bom in BOMS if data.startswith(bom.mark)), NO_BOM)


def decode_text(data: bytes) -> str:
    """Text of a file: BOM-named encoding, else strict UTF-8; the BOM is dropped.
    ``SourceFormatError`` names the problem (binary file, the first bad byte)."""
    bom = sniff_bom(data)
    if bom.codec == "utf-8" and b"\x00" in data[: BINARY_PROBE + len(bom.mark)]:
        raise SourceFormatError("binary file")
    try:
        text = data[len(bom.mark) :].decode(bom.codec)
    except UnicodeDecodeError as exc:
        offset = len(bom.mark) + exc.start
        raise SourceFormatError(f"not valid {bom.label} (byte 0x{data[offset]:02x} at offset {offset})") from exc
    if "\x00" in text[:BINARY_PROBE]:
        raise SourceFormatError(f"binary file (NUL characters after a {bom.label} byte-order mark)")
    return text


def as_utf8(data: bytes) -> bytes:
    """``data`` as UTF-8 without a BOM (UTF-16/32 with a BOM are re-encoded), for
    line-based parsing; bytes without a BOM are returned unchanged (checked later)."""
    bom = sniff_bom(data)
    if bom is NO_BOM:
        return data
    if bom.codec == "utf-8":
        return data[len(bom.mark) :]
    return decode_text(data).encode("utf-8")
