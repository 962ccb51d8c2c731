"""Read a GGUF file's header, metadata and tensor table without loading any tensor data.

Used to validate model files (bad magic, unsupported version, truncation all
become one clear ModelError) and to give :mod:`lsp_server.inference.gguf_info`
the facts it sizes a model from.  The file is memory-mapped and parsed in
place, so a 1 GB model costs only the header pages it touches.

Format reference: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

from lsp_server.errors import ModelError
from lsp_server.inference.gguf_info import GgufArray, GgufInfo, TensorInfo, tensor_nbytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_TRUNCATED_ADVICE = "the file is truncated or corrupt: download or assemble it again"
DEFAULT_ALIGNMENT = 32
SMALL_ARRAY_MAX = 64
"""Arrays with at most this many elements are kept in ``metadata``; longer ones are summarized."""

# GGUF metadata value types -> struct format (scalars only).
_SCALAR_FORMATS: dict[int, str] = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_TYPE_STRING = 8
_TYPE_ARRAY = 9

# tokenizer.ggml.token_type values whose token text is worth keeping (llama_token_type).
_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4


class _Truncated(Exception):
    pass


class _Reader:
    """Sequential little- or big-endian reads over a memory map, raising _Truncated past the end."""

    def __init__(self, buf: mmap.mmap, endian: str) -> None:
        self.buf = buf
        self.pos = 0
        self.endian = endian
        self.size = len(buf)

    def unpack(self, fmt: str) -> Any:
        st = struct.Struct(self.endian + fmt)
        if self.pos + st.size > self.size:
            raise _Truncated
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def string_span(self) -> tuple[int, int]:
        length = self.unpack("Q")
        start = self.pos
        if length > self.size - start:
            raise _Truncated
        self.pos = start + length
        return start, length

    def string(self) -> str:
        start, length = self.string_span()
        return bytes(self.buf[start : start + length]).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> list[int]:
        """Step over ``count`` strings; returns the offset of each one's length field (a vocabulary is 50k-150k)."""
        unpack = struct.Struct(self.endian + "Q").unpack_from
        buf, pos, end = self.buf, self.pos, self.size - 8
        starts = []
        for _ in range(count):
            if pos > end:
                raise _Truncated
            starts.append(pos)
            pos += 8 + unpack(buf, pos)[0]
        if pos > self.size:
            raise _Truncated
        self.pos = pos
        return starts

    def skip(self, n_bytes: int) -> None:
        if n_bytes > self.size - self.pos:
            raise _Truncated
        self.pos += n_bytes


def _read_value(reader: _Reader, value_type: int, key: str) -> Any:
    if value_type == _TYPE_STRING:
        return reader.string()
    if value_type == _TYPE_ARRAY:
        return _read_array(reader, key)
    fmt = _SCALAR_FORMATS.get(value_type)
    if fmt is None:
        raise ModelError(f"unknown GGUF metadata value type {value_type} for key {key!r}")
    return reader.unpack(fmt)


def _read_array(reader: _Reader, key: str) -> Any:
    element_type = reader.unpack("I")
    length = reader.unpack("Q")
    if element_type == _TYPE_ARRAY:
        raise ModelError(f"nested GGUF arrays are not supported (key {key!r})")
    if length <= SMALL_ARRAY_MAX:
        return [_read_value(reader, element_type, key) for _ in range(length)]
    if element_type == _TYPE_STRING:
        reader.skip_strings(length)
    else:
        fmt = _SCALAR_FORMATS.get(element_type)
        if fmt is None:
            raise ModelError(f"unknown GGUF array element type {element_type} for key {key!r}")
        reader.skip(struct.calcsize("<" + fmt) * length)
    return GgufArray(element_type, length)


def _special_tokens(
    reader: _Reader, token_types: tuple[int, int, int] | None, token_starts: list[int]
) -> dict[int, str]:
    """Text of control and user-defined tokens, from the token_type array and where each token string starts."""
    if token_types is None or not token_starts:
        return {}
    types_at, element_type, length = token_types
    fmt = _SCALAR_FORMATS.get(element_type)
    if fmt is None:
        return {}
    kinds = struct.unpack_from(f"{reader.endian}{length}{fmt}", reader.buf, types_at)
    found: dict[int, str] = {}
    for token_id, kind in enumerate(kinds[: len(token_starts)]):
        if kind in (_TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED):
            reader.pos = token_starts[token_id]
            found[token_id] = reader.string()
    return found


def read_gguf(path: str | os.PathLike[str]) -> GgufInfo:
    """Parse the GGUF header, metadata and tensor table of ``path``.

    Raises ModelError (one line, naming the file) when the file is missing,
    empty, not GGUF, of an unsupported version, or truncated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            if file_size < 24:
                kind = "empty" if file_size == 0 else f"only {file_size} bytes"
                raise ModelError(f"{path}: not a GGUF model file ({kind})")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, file_size)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a GGUF model file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror or exc}") from None


def _parse(path: Path, buf: mmap.mmap, file_size: int) -> GgufInfo:
    magic = bytes(buf[:4])
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path}: not a GGUF model file (starts with {magic!r}, expected b'GGUF')")
    endian = "<"
    (version,) = struct.unpack_from("<I", buf, 4)
    if version not in SUPPORTED_VERSIONS and struct.unpack_from(">I", buf, 4)[0] in SUPPORTED_VERSIONS:
        endian = ">"  # a big-endian GGUF (made for s390x)
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in SUPPORTED_VERSIONS:
        raise ModelError(
            f"{path}: GGUF version {version} is not supported (supported: {', '.join(map(str, SUPPORTED_VERSIONS))});"
            " convert it again with a current llama.cpp"
        )
    reader = _Reader(buf, endian)
    reader.pos = 8
    try:
        n_tensors = reader.unpack("Q")
        n_kv = reader.unpack("Q")
        # Counts beyond what the file could possibly hold mean a corrupt header, not a huge model.
        if n_tensors > file_size or n_kv > file_size:
            raise ModelError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} metadata keys)")
        metadata: dict[str, Any] = {}
        token_types: tuple[int, int, int] | None = None
        token_starts: list[int] = []
        vocab_size: int | None = None
        for _ in range(n_kv):
            key = reader.string()
            value_type = reader.unpack("I")
            if key == "tokenizer.ggml.tokens" and value_type == _TYPE_ARRAY:
                element_type = reader.unpack("I")
                vocab_size = reader.unpack("Q")
                if element_type == _TYPE_STRING:
                    token_starts = reader.skip_strings(vocab_size)  # kept to read special tokens' text later
                    metadata[key] = GgufArray(element_type, vocab_size)
                    continue
                reader.pos -= 12  # not strings: an odd file; read it the ordinary way
            elif key == "tokenizer.ggml.token_type" and value_type == _TYPE_ARRAY:
                element_type = reader.unpack("I")
                token_types = (reader.pos + 8, element_type, reader.unpack("Q"))
                reader.pos -= 12  # re-read the array header through the ordinary path
            metadata[key] = _read_value(reader, value_type, key)
        tensors: list[TensorInfo] = []
        for _ in range(n_tensors):
            name = reader.string()
            n_dims = reader.unpack("I")
            if n_dims > 8:
                raise ModelError(f"{path}: corrupt GGUF tensor table ({name!r} has {n_dims} dimensions)")
            shape = tuple(reader.unpack("Q") for _ in range(n_dims))
            ggml_type = reader.unpack("I")
            offset = reader.unpack("Q")
            tensors.append(TensorInfo(name, ggml_type, shape, offset, tensor_nbytes(ggml_type, shape)))
        header_end = reader.pos
        special = _special_tokens(reader, token_types, token_starts)
    except _Truncated:
        raise ModelError(
            f"{path}: truncated GGUF file (header cut off at {file_size} bytes); {_TRUNCATED_ADVICE}"
        ) from None
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
    data_offset = -(-header_end // alignment) * alignment
    data_end = data_offset + max((t.offset + (t.n_bytes or 0) for t in tensors), default=0)
    if data_end > file_size:
        raise ModelError(
            f"{path}: truncated GGUF file ({file_size} bytes, its tensors need {data_end}); {_TRUNCATED_ADVICE}"
        )
    arch_vocab = metadata.get(f"{metadata.get('general.architecture', '')}.vocab_size")
    if vocab_size is None and isinstance(arch_vocab, int):
        vocab_size = arch_vocab
    return GgufInfo(
        path=path,
        version=version,
        file_size=file_size,
        metadata=metadata,
        tensors=tuple(tensors),
        data_offset=data_offset,
        vocab_size=vocab_size,
        special_tokens=special,
    )
