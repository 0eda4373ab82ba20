"""`cielo.chatml.create_prompt` is the how-to's function, character for character."""

from __future__ import annotations

from cielo.chatml import create_prompt, make_system_message


def _howto_create_prompt(system_message: str, messages: list[dict[str, str]]) -> str:
    # Copied from seed-howto.md ("Create a prompt").
    prompt = system_message
    message_template = "\n<|im_start|>{}\n{}\n<|im_end|>"
    for message in messages:
        prompt += message_template.format(message['sender'], message['text'])
    prompt += "\n<|im_start|>assistant\n"
    return prompt


def test_system_message_template() -> None:
    assert make_system_message() == "<|im_start|>system\n\n<|im_end|>"
    assert make_system_message("Be brief.") == "<|im_start|>system\nBe brief.\n<|im_end|>"


def test_create_prompt_matches_the_howto() -> None:
    system = "<|im_start|>system\n{}\n<|im_end|>".format("")
    messages = [{"sender": "user", "text": "Hello world"}]
    prompt = create_prompt(system, messages)
    assert prompt == ("<|im_start|>system\n\n<|im_end|>\n<|im_start|>user\nHello world\n<|im_end|>"
                      "\n<|im_start|>assistant\n")
    assert prompt == _howto_create_prompt(system, messages)


def test_create_prompt_several_turns_and_no_messages() -> None:
    system = make_system_message("You are terse.")
    turns = [{"sender": "user", "text": "Hi"}, {"sender": "assistant", "text": "Hello."},
             {"sender": "user", "text": "Bye"}]
    assert create_prompt(system, turns) == _howto_create_prompt(system, turns)
    assert create_prompt(system, []) == system + "\n<|im_start|>assistant\n"
