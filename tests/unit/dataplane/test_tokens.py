"""Admission estimates (learn.microsoft.com/azure/ai-services/openai/how-to/quota): the prompt, plus max_tokens for
every completion the request can produce — each choice (n, best_of) of each prompt of a prompt list."""

from __future__ import annotations

from cielo.dataplane.tokens import count, estimate_request


def test_a_prompt_list_is_charged_max_tokens_per_prompt() -> None:
    assert count("hello") == 1
    assert estimate_request("completions", {"prompt": "hello", "max_tokens": 16}, 16) == 17
    assert estimate_request("completions", {"prompt": ["hello"] * 64, "max_tokens": 16}, 16) == 64 * 17
    assert estimate_request("completions", {"prompt": ["hello"] * 64}, 16) == 64 * 17  # the default, per prompt


def test_choices_multiply_max_tokens() -> None:
    body = {"prompt": ["hello", "hello"], "max_tokens": 10, "n": 3}
    assert estimate_request("completions", body, 16) == 2 + 2 * 3 * 10
    assert estimate_request("completions", {"prompt": "hello", "max_tokens": 10, "n": 2, "best_of": 4}, 16) == 41
    chat = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 100, "n": 3}
    assert estimate_request("chat", chat, 2048) == 3 + 4 + 1 + 300
    assert estimate_request("chat", {"messages": [{"role": "user", "content": "hello"}]}, 2048) == 8 + 2048


def test_token_id_prompts_and_embedding_inputs() -> None:
    assert estimate_request("completions", {"prompt": [1, 2, 3], "max_tokens": 5}, 16) == 3 + 5  # one prompt
    assert estimate_request("completions", {"prompt": [[1, 2], [3]], "max_tokens": 5}, 16) == 3 + 2 * 5
    assert estimate_request("embeddings", {"input": ["hello", "hello"]}, 16) == 2
    assert estimate_request("embeddings", {"input": "hello"}, 16) == 1
