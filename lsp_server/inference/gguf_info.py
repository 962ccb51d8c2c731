"""What a GGUF file's header says: its metadata read as model facts, and the size of every tensor.

:func:`lsp_server.inference.gguf.read_gguf` parses the file into a :class:`GgufInfo`;
this module interprets it: layer count, attention heads, head dimensions,
trained context, and the exact bytes of every tensor from the ggml type's
block size.

Large arrays (the tokenizer's vocabulary and merges) are not copied into
``metadata``: they appear there as :class:`GgufArray` summaries (type and
length).  What callers need from them is extracted instead: ``vocab_size``
and ``special_tokens`` (the text of every control / user-defined token, e.g.
``<|fim_prefix|>``), which is how FIM support can be read from the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.errors import ModelError

# ggml tensor types: id -> (name, elements per block, bytes per block).  From ggml.c's type_traits
# (the same table as gguf-py's GGML_QUANT_SIZES).  Ids 4, 5, 31-33 and 36-38 were removed from ggml.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}


@dataclass(frozen=True)
class GgufArray:
    """A metadata array too long to keep: its element type and length only."""

    element_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: int
    shape: tuple[int, ...]
    """Dimensions as GGUF stores them: innermost (row length) first."""

    offset: int
    """Byte offset of the data from the start of the data section."""

    n_bytes: int | None
    """Bytes of the tensor data, or None when the ggml type is unknown to this reader."""

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.ggml_type, (f"type{self.ggml_type}", 0, 0))[0]

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    """Where the tensor data section starts (after the header, aligned)."""

    vocab_size: int | None = None
    special_tokens: dict[int, str] = field(default_factory=dict)
    """Token id -> text of every control or user-defined token (FIM, chat and end-of-text markers)."""

    # --- metadata helpers -------------------------------------------------------------------------

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """``{architecture}.{key}`` from the metadata, e.g. ``arch_value("block_count")``."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def _required_int(self, key: str) -> int:
        value = self.arch_value(key)
        if value is None:
            raise ModelError(f"{self.path}: GGUF metadata has no {self.architecture}.{key}")
        if isinstance(value, list):  # per-layer values (e.g. OpenELM); callers wanting them use arch_value
            return int(max(value))
        return int(value)

    @property
    def context_length(self) -> int:
        """Context length the model was trained for."""
        return self._required_int("context_length")

    @property
    def block_count(self) -> int:
        return self._required_int("block_count")

    @property
    def embedding_length(self) -> int:
        return self._required_int("embedding_length")

    @property
    def feed_forward_length(self) -> int:
        value = self.arch_value("feed_forward_length")
        if value is None:
            return 4 * self.embedding_length
        return int(max(value)) if isinstance(value, list) else int(value)

    @property
    def head_count(self) -> int:
        return self._required_int("attention.head_count")

    @property
    def head_count_kv(self) -> int:
        """KV heads (fewer than ``head_count`` with grouped-query attention); defaults to head_count."""
        if self.arch_value("attention.head_count_kv") is None:
            return self.head_count
        return self._required_int("attention.head_count_kv")

    def head_count_kv_per_layer(self) -> list[int]:
        """KV heads of every layer (some architectures vary them per layer)."""
        value = self.arch_value("attention.head_count_kv")
        if isinstance(value, list):
            return [int(v) for v in value]
        return [self.head_count_kv] * self.block_count

    @property
    def key_length(self) -> int:
        """Dimension of one K head; llama.cpp's default is embedding_length / head_count."""
        if self.arch_value("attention.key_length") is not None:
            return self._required_int("attention.key_length")
        return self.embedding_length // self.head_count

    @property
    def value_length(self) -> int:
        """Dimension of one V head; llama.cpp's default is embedding_length / head_count."""
        if self.arch_value("attention.value_length") is not None:
            return self._required_int("attention.value_length")
        return self.embedding_length // self.head_count

    @property
    def tokenizer_model(self) -> str | None:
        value = self.metadata.get("tokenizer.ggml.model")
        return None if value is None else str(value)

    # --- sizes ------------------------------------------------------------------------------------

    @property
    def weight_bytes(self) -> int:
        """Bytes of all tensor data, from each tensor's ggml block size.

        If any tensor has a type this reader does not know, the data section's
        size (file size minus header) is used instead.
        """
        if any(t.n_bytes is None for t in self.tensors):
            return self.file_size - self.data_offset
        return sum(t.n_bytes or 0 for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo | None:
        for info in self.tensors:
            if info.name == name:
                return info
        return None


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...]) -> int | None:
    """Bytes of a tensor of ``ggml_type`` and ``shape`` (rows are whole blocks), or None for an unknown type."""
    traits = GGML_TYPES.get(ggml_type)
    if traits is None:
        return None
    _, block_elements, block_bytes = traits
    return math.prod(shape) // block_elements * block_bytes
