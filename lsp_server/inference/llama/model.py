"""The GGUF model: checked, loaded by llama.cpp (``llama_cpp._internals.LlamaModel``), and its vocabulary.

The model's facts come from llama.cpp once it has loaded the file: metadata, trained context, and the FIM tokens
llama.cpp itself recognised (``llama_vocab_fim_pre`` and the rest), which is what picks the prompt template.

Tokenizing and detokenizing only read the vocabulary, which is immutable once the model is loaded, so they may run
on any thread (llama-server tokenizes on its HTTP threads the same way).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp as llama
from llama_cpp._internals import LlamaModel

from lsp_server.errors import EngineError, ModelError
from lsp_server.inference.gguf import read_gguf
from lsp_server.inference.llama.log import LLAMA_LOG
from lsp_server.settings import EngineSettings

_FIM_TOKENS = {
    "pre": llama.llama_vocab_fim_pre,
    "suf": llama.llama_vocab_fim_suf,
    "mid": llama.llama_vocab_fim_mid,
    "pad": llama.llama_vocab_fim_pad,
    "rep": llama.llama_vocab_fim_rep,
    "sep": llama.llama_vocab_fim_sep,
}
_SPECIAL = llama.LLAMA_TOKEN_ATTR_CONTROL | llama.LLAMA_TOKEN_ATTR_USER_DEFINED


class Model:
    """A loaded GGUF model with cached token pieces; ``close`` frees it (and any context made from it)."""

    def __init__(self, path: Path, settings: EngineSettings) -> None:
        read_gguf(path)  # a missing, non-GGUF or truncated file is one clear ModelError before llama.cpp reads it
        params = LlamaModel.default_params()
        # Repacked weights use a different kernel from 4 tokens a batch on, which would cap exact
        # draft verification at 3 tokens; see EngineSettings.weight_repack.
        params.use_extra_bufts = settings.weight_repack
        params.load_mode = llama.LLAMA_LOAD_MODE_MMAP if settings.use_mmap else llama.LLAMA_LOAD_MODE_NONE
        LLAMA_LOG.clear_recent()
        try:
            # verbose=True: otherwise LlamaModel points the process's stdout at /dev/null while loading, and
            # stdout carries the protocol (llama.cpp's own lines go to LLAMA_LOG either way).
            self.llama = LlamaModel(path_model=str(path), params=params, verbose=True)
        except ValueError:
            reason = LLAMA_LOG.recent_errors() or "llama.cpp could not read it"
            raise ModelError(
                f"Cannot load model {path}: {reason}. "
                "The file is truncated or corrupt; re-install or re-download the model"
            ) from None
        self.vocab = self.llama.vocab
        self.n_ctx_train = int(self.llama.n_ctx_train())
        self.n_vocab = int(self.llama.n_vocab())
        self.metadata: dict[str, str] = self.llama.metadata()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._eog: dict[int, bool] = {}
        self.fim_tokens: dict[str, str] = {
            role: self.llama.token_get_text(token)
            for role, getter in _FIM_TOKENS.items()
            if (token := getter(self.vocab)) != llama.LLAMA_TOKEN_NULL
        }
        """Text of each FIM token llama.cpp found in the vocabulary, by role (``pre``, ``suf``, ``mid``, ``pad``,
        ``rep``, ``sep``); empty for a model that cannot infill."""

    def has_token(self, text: str) -> bool:
        """Whether ``text`` is one control or user-defined token of the vocabulary (``<fim_prefix>``...)."""
        tokens = self.tokenize(text.encode("utf-8"), False, True)
        return len(tokens) == 1 and bool(self.llama.token_get_attr(tokens[0]) & _SPECIAL)

    def tokenize(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        try:
            return self.llama.tokenize(data, add_special, parse_special)
        except RuntimeError:
            raise EngineError("tokenization failed") from None

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        """Text of ``tokens``; ``special`` renders control tokens instead of dropping them.

        llama.cpp's ``llama_detokenize``, not ``LlamaModel.detokenize``: that one joins 32-byte pieces and strips
        a space after BOS."""
        if not tokens:
            return ""
        array = (llama.llama_token * len(tokens))(*tokens)
        size = max(64, 8 * len(tokens))
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_detokenize(self.vocab, array, len(tokens), buf, size, False, special)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n + 1
        raise EngineError("detokenize failed")

    def piece(self, token: int) -> bytes:
        """The bytes of one token (cached: called once per generated token; ``LlamaModel.token_to_piece`` returns
        its whole 32-byte buffer)."""
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(llama.llama_vocab_is_eog(self.vocab, token))
        return eog

    def close(self) -> None:
        self.llama.close()

