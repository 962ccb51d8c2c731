"""Fill-in-the-middle prompts for each model family, and which family a model belongs to.

A loaded model's family comes from its vocabulary: the FIM prefix token llama.cpp names
(``llama_vocab_fim_pre``), else the family whose marker token the vocabulary has.  Metadata names
are read only where no vocabulary is at hand (a team endpoint without ``fimTemplate``).

Layouts (``P`` prefix, ``S`` suffix, ``H`` a file-path header):

=========  ==============================================================================
qwen       ``[<|repo_name|>repo\\n]<|file_sep|>path\\n<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>``
starcoder  ``<fim_prefix>H P<fim_suffix>S<fim_middle>`` (StarCoder 1/2, SantaCoder, Refact, FIM SmolLM)
codellama  ``<PRE> H P <SUF>S <MID>`` (the spaces belong to the format: the tokens are ``▁<PRE>``…)
deepseek   ``<｜fim▁begin｜>H P<｜fim▁hole｜>S<｜fim▁end｜>``
codestral  ``[SUFFIX]S[PREFIX]H P`` (suffix first)
plain      ``H P`` (any causal model: continue the prefix)
=========  ==============================================================================

``M`` (``middle``) is the text typed just before the cursor since a stable split point: it goes
after the middle marker, as if the model had already written it.  While the user types, the prompt
then only grows at its end, so each keystroke evaluates one or two new tokens instead of the whole
suffix after a changed prefix (the layouts above with ``M`` appended; ``plain`` and ``codestral``
end with the prefix anyway and just append it).

``H`` is one line comment, ``# Path: src/app.py``, in the document's language (omitted when
the language or path is unknown). The header and the prefix come first in every layout but
Codestral's, so consecutive keystrokes share the longest possible prompt prefix and the engine
re-uses its KV cache. BOS is not written: the engine adds it when the GGUF says so.

The document's own text could contain a family's control strings (this file does); they are
neutralised with a zero-width space so the engine, which parses special tokens in the prompt,
never reads them as tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lsp_server.inference.types import Vocabulary
from lsp_server.settings import FimFamily
from lsp_server.syntax import languages

_ZWSP = "\u200b"


@dataclass(frozen=True)
class FimTemplate:
    """How to lay out a FIM prompt for one model family, and the strings that end its answer."""

    family: FimFamily
    stop_strings: tuple[str, ...]
    """End-of-text, end-of-turn, file-separator and FIM marker strings: generation stops at any of them."""

    control: tuple[str, ...]
    """Control strings of the family, neutralised when they occur in document text."""

    def build(
        self,
        prefix: str,
        suffix: str,
        path: str | None = None,
        *,
        language: str | None = None,
        repo: str | None = None,
        middle: str = "",
        extra: Sequence[tuple[str, str]] = (),
    ) -> str:
        """The prompt for a cursor between ``prefix + middle`` and ``suffix`` in the file at ``path``.

        ``language`` (an LSP languageId) picks the header's comment marker; by default the path's
        extension does. ``repo`` adds Qwen's ``<|repo_name|>`` line. ``middle`` is the end of the text
        before the cursor, placed after the middle marker (see the module docstring). ``extra`` is (file name,
        text) chunks of other files, placed before the current file: Qwen's ``<|file_sep|>`` sections, a
        ``Path:`` comment per chunk for the other families.
        """
        prefix, suffix, middle = self.neutralise(prefix), self.neutralise(suffix), self.neutralise(middle)
        path = self.neutralise(path.replace("\n", " ")) if path else None
        extra = [(self.neutralise(name.replace("\n", " ")), self.neutralise(text)) for name, text in extra]
        family = self.family
        if family == "qwen":
            header = f"<|repo_name|>{self.neutralise(repo)}\n" if repo else ""
            header += "".join(f"<|file_sep|>{name}\n{text}\n" for name, text in extra)
            if path:
                header += f"<|file_sep|>{path}\n"
            return f"{header}<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}"
        header = "".join(f"{_comment_header(name, language)}{text}\n\n" for name, text in extra)
        header += _comment_header(path, language)
        if family == "starcoder":
            return f"<fim_prefix>{header}{prefix}<fim_suffix>{suffix}<fim_middle>{middle}"
        if family == "codellama":
            return f"<PRE> {header}{prefix} <SUF>{suffix} <MID>{middle}"
        if family == "deepseek":
            return f"<｜fim▁begin｜>{header}{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>{middle}"
        if family == "codestral":
            return f"[SUFFIX]{suffix}[PREFIX]{header}{prefix}{middle}"
        return f"{header}{prefix}{middle}"

    def neutralise(self, text: str) -> str:
        """``text`` with every control string of the family broken by a zero-width space."""
        for token in self.control:
            if token in text:
                text = text.replace(token, token[0] + _ZWSP + token[1:])
        return text


def _comment_header(path: str | None, language: str | None) -> str:
    if not path:
        return ""
    marker = languages.comment_prefix(language, path)
    return f"{marker} Path: {path}\n" if marker else ""


_QWEN = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")
_QWEN_END = ("<|endoftext|>", "<|im_end|>", "<|im_start|>")
_STARCODER = (
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<file_sep>",
    "<repo_name>",
    "<filename>",
)
_STARCODER_END = ("<|endoftext|>", "<|im_end|>", "<|im_start|>")
_CODELLAMA = ("<PRE>", "<SUF>", "<MID>", "<EOT>")
_CODELLAMA_END = ("</s>",)
_DEEPSEEK = ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
_DEEPSEEK_END = ("<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<|EOT|>")
_CODESTRAL = ("[SUFFIX]", "[PREFIX]", "[MIDDLE]", "[INST]", "[/INST]")
_CODESTRAL_END = ("</s>",)
_PLAIN_END = ("<|endoftext|>", "</s>", "<|im_end|>", "<|EOT|>", "<EOT>", "<file_sep>", "<|file_sep|>")

TEMPLATES: dict[FimFamily, FimTemplate] = {
    "qwen": FimTemplate("qwen", stop_strings=_QWEN_END + _QWEN, control=_QWEN + _QWEN_END),
    "starcoder": FimTemplate(
        "starcoder", stop_strings=_STARCODER_END + _STARCODER, control=_STARCODER + _STARCODER_END
    ),
    "codellama": FimTemplate(
        "codellama", stop_strings=("<EOT>",) + _CODELLAMA_END + _CODELLAMA[:3], control=_CODELLAMA
    ),
    "deepseek": FimTemplate(
        "deepseek", stop_strings=_DEEPSEEK_END + _DEEPSEEK, control=_DEEPSEEK + _DEEPSEEK_END
    ),
    "codestral": FimTemplate(
        "codestral", stop_strings=_CODESTRAL_END + _CODESTRAL, control=_CODESTRAL + _CODESTRAL_END
    ),
    "plain": FimTemplate("plain", stop_strings=_PLAIN_END, control=_PLAIN_END),
}

# The token whose presence in the vocabulary identifies a family's FIM format (first match wins).
_MARKERS: tuple[tuple[FimFamily, str], ...] = (
    ("qwen", "<|fim_prefix|>"),
    ("starcoder", "<fim_prefix>"),
    ("deepseek", "<｜fim▁begin｜>"),
    ("codestral", "[SUFFIX]"),
    ("codellama", "▁<PRE>"),
    ("codellama", "<PRE>"),
)
_MARKER_STRINGS = frozenset(marker for _, marker in _MARKERS)
_PREFIX_FAMILY: dict[str, FimFamily] = {
    **{marker: family for family, marker in _MARKERS},
    "[PREFIX]": "codestral",
}
"""The family of each FIM prefix token text llama.cpp may name."""

_NAME_KEYS = ("general.architecture", "general.name", "general.basename", "general.finetune")


def _unwrap(metadata: Any, special_tokens: Any) -> tuple[Mapping[str, Any], Any]:
    """Accept a metadata mapping, or an object with ``.metadata`` and ``.special_tokens`` (a GgufInfo)."""
    if not isinstance(metadata, Mapping) and hasattr(metadata, "metadata"):
        if special_tokens is None:
            special_tokens = getattr(metadata, "special_tokens", None)
        metadata = metadata.metadata
    return (metadata if isinstance(metadata, Mapping) else {}), special_tokens


def _vocabulary_markers(
    metadata: Mapping[str, Any], special_tokens: Iterable[str] | Mapping[int, str] | None
) -> set[str] | None:
    """FIM marker tokens the model has, or None when nothing about its vocabulary is known."""
    known = False
    found: set[str] = set()
    if special_tokens is not None:
        values = special_tokens.values() if isinstance(special_tokens, Mapping) else special_tokens
        found.update(str(value) for value in values if value in _MARKER_STRINGS)
        known = True
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, (list, tuple)):
        found.update(_MARKER_STRINGS.intersection(tokens))
        known = True
    return found if known else None


def _family_from_names(metadata: Mapping[str, Any]) -> FimFamily:
    arch = str(metadata.get("general.architecture", "")).lower()
    names = " ".join(str(metadata.get(key, "")) for key in _NAME_KEYS).lower()
    compact = names.replace(" ", "").replace("-", "").replace("_", "")
    if "codestral" in compact:
        return "codestral"
    if "deepseek" in compact:
        return "deepseek"
    if "codellama" in compact:
        return "codellama"
    if "qwen" in arch or "qwen" in compact:
        return "qwen"
    if arch in ("starcoder", "starcoder2", "refact") or any(
        name in compact for name in ("starcoder", "santacoder", "refact", "stablecode")
    ):
        return "starcoder"
    # SmolLM (1 and 2) shares StarCoder's marker names but its released GGUFs have no FIM
    # tokens: it is detected as starcoder only when <fim_prefix> is in its vocabulary.
    return "plain"


def detect_family(
    metadata: Mapping[str, Any] | Any, special_tokens: Iterable[str] | Mapping[int, str] | None = None
) -> FimFamily:
    """The FIM family of a model from its GGUF metadata (``general.*`` keys, optional token list).

    Vocabulary evidence wins: ``special_tokens`` (strings, or GgufInfo's ``{id: text}``) or the
    ``tokenizer.ggml.tokens`` list. A vocabulary without any FIM marker means the model cannot
    infill (SmolLM2-Instruct, plain Qwen2 chat models): ``plain``. Without vocabulary evidence the
    family comes from the architecture and names (qwen2 → qwen, starcoder2 → starcoder, …).
    """
    metadata, special_tokens = _unwrap(metadata, special_tokens)
    markers = _vocabulary_markers(metadata, special_tokens)
    if markers is None:
        return _family_from_names(metadata)
    return _family_of_markers(markers)


def _family_of_markers(markers: set[str]) -> FimFamily:
    for family, marker in _MARKERS:
        if marker in markers:
            return family
    return "plain"


def family_of_vocabulary(vocabulary: Vocabulary) -> FimFamily:
    """The family of the FIM prefix token llama.cpp names; where it names none (``llama_vocab_fim_pre`` is -1) or
    one no template here knows, the family whose marker token the vocabulary has; else plain (cannot infill)."""
    family = _PREFIX_FAMILY.get(vocabulary.fim_tokens.get("pre", ""))
    if family is not None:
        return family
    return _family_of_markers({marker for marker in _MARKER_STRINGS if vocabulary.has_token(marker)})


def template_for(
    metadata: Mapping[str, Any] | Any,
    override: FimFamily | None = None,
    *,
    special_tokens: Iterable[str] | Mapping[int, str] | None = None,
    vocabulary: Vocabulary | None = None,
) -> FimTemplate:
    """The template to use: ``override`` (ModelSettings.fim_template) if set, else the family of ``vocabulary``
    (a loaded model), else the family detected from ``metadata``."""
    if override is not None:
        return TEMPLATES[override]
    if vocabulary is not None:
        return TEMPLATES[family_of_vocabulary(vocabulary)]
    return TEMPLATES[detect_family(metadata, special_tokens)]
