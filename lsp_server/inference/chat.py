"""Turn a system + user message into the prompt text an instruct model expects.

Both embedded families (Qwen2.5-Coder-Instruct, SmolLM2-Instruct) use ChatML,
which we detect from the GGUF's `tokenizer.chat_template`; other models get a
plain role-labelled layout that instruct models follow reasonably well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    stop: tuple[str, ...]


def format_chat(metadata: Mapping[str, object], system: str, user: str) -> ChatPrompt:
    template = str(metadata.get("tokenizer.chat_template", ""))
    if "<|im_start|>" in template:
        return ChatPrompt(
            text=f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
            stop=("<|im_end|>", "<|endoftext|>", "<|im_start|>"),
        )
    return ChatPrompt(text=f"{system}\n\n### User\n{user}\n\n### Assistant\n", stop=("\n### User",))
