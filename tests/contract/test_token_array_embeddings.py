"""Embeddings from token arrays with the real openai client, as langchain's AzureOpenAIEmbeddings sends them by
default (it counts tokens with tiktoken and sends cl100k_base ids): the embedded e5 model answers them with the
embeddings of the text they encode."""

from __future__ import annotations

import math

import httpx
import pytest
from openai import AzureOpenAI, BadRequestError

from cielo.dataplane import tokens
from contract.conftest import Contract

pytestmark = pytest.mark.e2e

E5 = "e5-small"  # the bootstrap's deployment of multilingual-e5-small


def test_token_arrays_embed_as_their_text(contract: Contract) -> None:
    http = httpx.Client(verify=contract.server.bundle, timeout=60)
    client = AzureOpenAI(azure_endpoint=contract.base_url.removesuffix("openai"), api_key=contract.key,
                         api_version="2024-10-21", http_client=http)
    texts = ["The quick brown fox", "Ein langsamer Hund"]
    ids = [tokens.encoding().encode(text) for text in texts]
    as_text = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    as_ids = client.embeddings.create(model=E5, input=ids, encoding_format="float")
    one = client.embeddings.create(model=E5, input=ids[0])  # one token array; base64 on the wire, as by default
    assert [len(d.embedding) for d in as_ids.data] == [384, 384]
    for mine, theirs in zip(as_ids.data, as_text.data, strict=True):
        assert all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(mine.embedding, theirs.embedding, strict=True))
    assert all(math.isclose(a, b, abs_tol=1e-5)
               for a, b in zip(one.data[0].embedding, as_text.data[0].embedding, strict=True))
    with pytest.raises(BadRequestError) as refused:
        client.embeddings.create(model=E5, input=[[100265]])
    assert refused.value.body["param"] == "input[0]"  # type: ignore[index]
    http.close()
