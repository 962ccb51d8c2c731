"""The GGUF reader on the real embedded models and on broken files made from them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lsp_server.errors import ModelError
from lsp_server.inference.assembly import ensure_model
from lsp_server.inference.catalog import CATALOG
from lsp_server.inference.gguf import read_gguf
from lsp_server.inference.gguf_info import GGML_TYPES, GgufArray, tensor_nbytes
from lsp_server.inference.installed import model_status


@pytest.fixture(scope="module")
def qwen_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not model_status("qwen2.5-coder-0.5b").installed:
        pytest.skip(f"qwen2.5-coder-0.5b is not installed: {CATALOG['qwen2.5-coder-0.5b'].install_hint}")
    return ensure_model("qwen2.5-coder-0.5b", tmp_path_factory.mktemp("models"))


# Values llama.cpp prints when it loads these files (print_info: n_layer, n_head, n_head_kv, ...).
LLAMA_CPP_FIGURES = (
    "architecture",
    "block_count",
    "head_count",
    "head_count_kv",
    "key_length",
    "value_length",
    "embedding_length",
    "feed_forward_length",
    "context_length",
    "vocab_size",
    "tokenizer_model",
)


@pytest.mark.parametrize(
    ("fixture", "figures"),
    [
        pytest.param(
            "qwen_path",
            ("qwen2", 24, 14, 2, 64, 64, 896, 4864, 32768, 151936, "gpt2"),
            id="qwen2.5-coder-0.5b",
        ),
        pytest.param(
            "smollm_path", ("llama", 30, 9, 3, 64, 64, 576, 1536, 8192, 49152, "gpt2"), id="smollm2-135m"
        ),
    ],
)
def test_metadata_matches_llama_cpp(request: pytest.FixtureRequest, fixture: str, figures: tuple) -> None:
    expected = dict(zip(LLAMA_CPP_FIGURES, figures, strict=True))
    info = read_gguf(request.getfixturevalue(fixture))
    assert {key: getattr(info, key) for key in expected} == expected
    assert info.version == 3


def test_tensor_sizes_cover_the_whole_data_section(qwen_path: Path, smollm_path: Path) -> None:
    for path in (qwen_path, smollm_path):
        info = read_gguf(path)
        # These files are packed: the last tensor ends at the end of the file, so the sizes
        # computed from ggml block sizes account for every byte after the header.
        assert info.data_offset + info.weight_bytes == info.file_size
        assert all(t.n_bytes is not None for t in info.tensors)
        end = max(t.offset + (t.n_bytes or 0) for t in info.tensors)
        assert info.data_offset + end == info.file_size


def test_qwen_tensor_table(qwen_path: Path) -> None:
    info = read_gguf(qwen_path)
    assert len(info.tensors) == 291  # llama.cpp: "loaded meta data with 26 key-value pairs and 291 tensors"
    assert len(info.metadata) == 26
    embedding = info.tensor("token_embd.weight")
    assert embedding is not None and embedding.shape == (896, 151936)
    assert {t.type_name for t in info.tensors} <= {"F32", "Q5_0", "Q8_0", "Q4_K", "Q6_K"}


def test_large_arrays_are_summarized_but_special_tokens_kept(qwen_path: Path) -> None:
    info = read_gguf(qwen_path)
    assert info.metadata["tokenizer.ggml.tokens"] == GgufArray(element_type=8, length=151936)
    assert isinstance(info.metadata["tokenizer.ggml.merges"], GgufArray)
    special = {text: token_id for token_id, text in info.special_tokens.items()}
    assert special["<|fim_prefix|>"] == 151659
    assert special["<|fim_suffix|>"] == 151661
    assert special["<|fim_middle|>"] == 151660
    assert special["<|endoftext|>"] == 151643
    assert info.metadata["tokenizer.ggml.eos_token_id"] == 151645
    assert "<|im_start|>" in info.metadata["tokenizer.chat_template"]


def test_smollm_has_no_fim_tokens(smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    assert info.special_tokens[0] == "<|endoftext|>"
    assert not any("fim" in text for text in info.special_tokens.values())


# --- broken files -------------------------------------------------------------------------------------


def test_truncated_header(tmp_path: Path, qwen_path: Path) -> None:
    cut = tmp_path / "first-mb.gguf"
    with open(qwen_path, "rb") as source:
        cut.write_bytes(source.read(1 << 20))
    with pytest.raises(ModelError, match=r"truncated GGUF file \(header cut off at 1048576 bytes\)"):
        read_gguf(cut)


def test_truncated_tensor_data(tmp_path: Path, smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    cut = tmp_path / "short.gguf"
    with open(smollm_path, "rb") as source:
        cut.write_bytes(source.read(info.data_offset))
    with open(cut, "r+b") as handle:
        handle.truncate(info.file_size - 1)  # sparse: the header is whole, one byte of data is missing
    with pytest.raises(
        ModelError, match=rf"truncated GGUF file \({info.file_size - 1} bytes, its tensors need"
    ):
        read_gguf(cut)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", r"not a GGUF model file \(empty\)", id="empty"),
        pytest.param(b"GGUF\x03", r"not a GGUF model file \(only 5 bytes\)", id="tiny"),
        pytest.param(b"# just some text\n" * 10, r"not a GGUF model file \(starts with b'# ju'", id="text"),
        pytest.param(b"PK\x03\x04" + bytes(100), r"starts with b'PK\\x03\\x04'", id="zip"),
        pytest.param(b"GGUF" + struct.pack("<IQQ", 1, 0, 0), r"GGUF version 1 is not supported", id="v1"),
        pytest.param(b"GGUF" + struct.pack("<IQQ", 9, 0, 0), r"GGUF version 9 is not supported", id="v9"),
        pytest.param(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), r"corrupt GGUF header", id="huge-count"),
        pytest.param(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + b"\x05", r"truncated GGUF file", id="cut-key"),
    ],
)
def test_not_gguf(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as raised:
        read_gguf(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        read_gguf(tmp_path / "absent.gguf")
    with pytest.raises(ModelError, match="is a directory"):
        read_gguf(tmp_path)


# --- every value type, on a file written here ---------------------------------------------------------


def _string(text: str, endian: str = "<") -> bytes:
    data = text.encode()
    return struct.pack(endian + "Q", len(data)) + data


def _gguf(
    metadata: list[tuple[str, int, bytes]], tensors: list[tuple[str, tuple[int, ...], int]], endian="<"
):
    """A GGUF v3 file: metadata as (key, value type, encoded value), tensors as (name, shape, ggml type)."""
    out = b"GGUF" + struct.pack(endian + "IQQ", 3, len(tensors), len(metadata))
    for key, value_type, value in metadata:
        out += _string(key, endian) + struct.pack(endian + "I", value_type) + value
    offset = 0
    sizes = []
    for name, shape, ggml_type in tensors:
        out += _string(name, endian) + struct.pack(endian + "I", len(shape))
        out += b"".join(struct.pack(endian + "Q", d) for d in shape)
        out += struct.pack(endian + "IQ", ggml_type, offset)
        size = tensor_nbytes(ggml_type, shape) or 64
        sizes.append(size)
        offset += -(-size // 32) * 32
    out += bytes(-len(out) % 32)
    return out + bytes(offset)


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
def test_every_metadata_type(tmp_path: Path, endian: str) -> None:
    def p(fmt: str, *values) -> bytes:
        return struct.pack(endian + fmt, *values)

    long_strings = p("IQ", 8, 100) + b"".join(_string(f"tok{i}", endian) for i in range(100))
    metadata = [
        ("general.architecture", 8, _string("llama", endian)),
        ("u8", 0, p("B", 200)),
        ("i8", 1, p("b", -5)),
        ("u16", 2, p("H", 65000)),
        ("i16", 3, p("h", -300)),
        ("u32", 4, p("I", 4_000_000_000)),
        ("i32", 5, p("i", -70000)),
        ("f32", 6, p("f", 0.5)),
        ("bool", 7, p("?", True)),
        ("u64", 10, p("Q", 1 << 40)),
        ("i64", 11, p("q", -(1 << 40))),
        ("f64", 12, p("d", 0.25)),
        ("small", 9, p("IQ", 5, 3) + p("iii", 1, 2, 3)),
        ("strings", 9, long_strings),
        ("numbers", 9, p("IQ", 6, 1000) + bytes(4000)),
        ("llama.block_count", 4, p("I", 2)),
        ("llama.attention.head_count", 4, p("I", 4)),
        ("llama.embedding_length", 4, p("I", 64)),
    ]
    tensors = [("a", (64, 2), 0), ("b", (256, 2), 12), ("c", (32, 3), 8)]
    path = tmp_path / "synthetic.gguf"
    path.write_bytes(_gguf(metadata, tensors, endian))
    info = read_gguf(path)
    values = {
        k: info.metadata[k] for k in ("u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "u64", "i64")
    }
    assert values == dict(
        u8=200,
        i8=-5,
        u16=65000,
        i16=-300,
        u32=4_000_000_000,
        i32=-70000,
        f32=0.5,
        bool=True,
        u64=1 << 40,
        i64=-(1 << 40),
    )
    assert info.metadata["f64"] == 0.25
    assert info.metadata["small"] == [1, 2, 3]
    assert info.metadata["strings"] == GgufArray(8, 100)
    assert info.metadata["numbers"] == GgufArray(6, 1000)
    assert [(t.name, t.type_name, t.n_bytes) for t in info.tensors] == [
        ("a", "F32", 64 * 2 * 4),
        ("b", "Q4_K", 2 * 144),
        ("c", "Q8_0", 3 * 34),
    ]
    assert info.weight_bytes == 512 + 288 + 102
    # No head_count_kv or key_length: llama.cpp's defaults (head_count, embedding / heads).
    assert (info.head_count_kv, info.key_length, info.value_length) == (4, 16, 16)


def test_unknown_tensor_type_falls_back_to_file_size(tmp_path: Path) -> None:
    path = tmp_path / "future.gguf"
    path.write_bytes(
        _gguf([("general.architecture", 8, _string("llama"))], [("x", (32, 2), 12), ("y", (8,), 99)])
    )
    info = read_gguf(path)
    assert info.tensors[1].n_bytes is None and info.tensors[1].type_name == "type99"
    assert info.weight_bytes == info.file_size - info.data_offset


def test_missing_required_metadata_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "bare.gguf"
    path.write_bytes(_gguf([("general.architecture", 8, _string("mamba"))], []))
    with pytest.raises(ModelError, match=r"GGUF metadata has no mamba\.block_count"):
        _ = read_gguf(path).block_count


@pytest.mark.parametrize(
    ("type_name", "block_elements", "block_bytes"),
    [
        # ggml.c type_traits (and gguf-py's GGML_QUANT_SIZES)
        ("F32", 1, 4),
        ("F16", 1, 2),
        ("BF16", 1, 2),
        ("Q4_0", 32, 18),
        ("Q4_1", 32, 20),
        ("Q5_0", 32, 22),
        ("Q5_1", 32, 24),
        ("Q8_0", 32, 34),
        ("Q2_K", 256, 84),
        ("Q3_K", 256, 110),
        ("Q4_K", 256, 144),
        ("Q5_K", 256, 176),
        ("Q6_K", 256, 210),
        ("Q8_K", 256, 292),
        ("IQ2_XXS", 256, 66),
        ("IQ4_NL", 32, 18),
        ("IQ4_XS", 256, 136),
    ],
)
def test_ggml_block_sizes(type_name: str, block_elements: int, block_bytes: int) -> None:
    (type_id,) = [i for i, (name, _, _) in GGML_TYPES.items() if name == type_name]
    assert GGML_TYPES[type_id][1:] == (block_elements, block_bytes)
    assert tensor_nbytes(type_id, (block_elements * 4, 3)) == 12 * block_bytes
