"""The how-to's ChatML prompt builder, for completions with `stop=["<|im_end|>"]` (seed-howto.md).

`create_prompt` is the how-to's function as published: the system message (itself built with
`SYSTEM_MESSAGE_TEMPLATE`), then one `<|im_start|>{sender}` block per message, then the opening of the
assistant's turn.
"""

from __future__ import annotations

from typing import Any

SYSTEM_MESSAGE_TEMPLATE = "<|im_start|>system\n{}\n<|im_end|>"
MESSAGE_TEMPLATE = "\n<|im_start|>{}\n{}\n<|im_end|>"


def make_system_message(text: str = "") -> str:
    return SYSTEM_MESSAGE_TEMPLATE.format(text)


def create_prompt(system_message: str, messages: list[dict[str, Any]]) -> str:
    prompt = system_message
    for message in messages:
        prompt += MESSAGE_TEMPLATE.format(message["sender"], message["text"])
    prompt += "\n<|im_start|>assistant\n"
    return prompt
