"""How pools are declared (dataplane/catalogue.py): an `--upstream` NAME given more than once, or a backends file
(YAML); every mistake is refused with a message naming it, and the data plane's registry builds the pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from cielo.backends.pool import PoolBackend, PoolPolicy
from cielo.dataplane.backends import BackendRegistry
from cielo.dataplane.catalogue import parse_backends_file, upstream_entries

FILE = """
models:
  llama:
    cooldown_s: 12
    failures: 2
    health_interval_s: 0
    backends:
      - url: http://vllm-a:8000/v1
        model: meta-llama/Llama-3.1-8B-Instruct
        weight: 3
      - url: http://vllm-b:8000/v1
        model: meta-llama/Llama-3.1-8B-Instruct
      - url: https://my-aoai.openai.azure.com/openai/v1
        model: gpt-4o-mini
        api-key-env: AZURE_OPENAI_API_KEY
        priority: 1
  vectors:
    embeddings: true
    backends:
      - url: http://tei:8080/v1
      - url: https://cielo-2.example:8443/accounts/cielo-openai/openai/v1
        managed-identity: true
        priority: 1
"""


def test_an_upstream_name_given_twice_is_a_pool_and_once_is_a_plain_upstream() -> None:
    entries = upstream_entries(["m=http://a/v1,priority=0,weight=2", "solo=http://s/v1", "M=http://b/v1,priority=1"])
    assert [(e.name, e.backend) for e in entries] == [("m", "pool"), ("solo", "upstream")]
    assert [(m.target, dict(m.options)) for m in entries[0].members] == [
        ("http://a/v1", {"priority": "0", "weight": "2"}), ("http://b/v1", {"priority": "1"})]


def test_a_backends_file_declares_pools_with_their_settings(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(FILE)
    llama, vectors = parse_backends_file(path)
    assert llama.backend == "pool" and not llama.is_embedding and vectors.is_embedding
    assert dict(llama.options) == {"cooldown_s": "12", "failures": "2", "health_interval_s": "0"}
    assert [m.upstream_model for m in llama.members] == ["meta-llama/Llama-3.1-8B-Instruct"] * 2 + ["gpt-4o-mini"]
    assert llama.members[2].api_key_env == "AZURE_OPENAI_API_KEY"
    assert dict(vectors.members[1].options)["managed-identity"] == "true"
    backend = BackendRegistry().for_model(llama)
    assert isinstance(backend, PoolBackend)
    assert backend.policy == PoolPolicy(cooldown_s=12.0, failures=2, health_interval_s=0.0)
    assert [(m.label, m.priority, m.weight) for m in backend.members] == [
        ("http://vllm-a:8000/v1", 0, 3.0), ("http://vllm-b:8000/v1", 0, 1.0),
        ("https://my-aoai.openai.azure.com/openai/v1", 1, 1.0)]


def test_a_model_in_both_the_file_and_upstream_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(FILE)
    with pytest.raises(ValueError, match="'llama' is named both by --upstream and in"):
        upstream_entries(["llama=http://x/v1"], path)


@pytest.mark.parametrize(("spec", "message"), [
    ("m=http://a/v1,priority=-1", "--upstream: priority must be at least 0, got '-1'"),
    ("m=http://a/v1,priority=first", "--upstream: priority must be an integer, got 'first'"),
    ("m=http://a/v1,weight=0", "--upstream: weight must be above 0, got '0'"),
    ("m=http://a/v1,retries=3", "--upstream: unknown option 'retries'"),
])
def test_bad_upstream_pool_options_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        upstream_entries([spec])
    assert str(raised.value).startswith(message)


def test_a_pool_mixing_embeddings_and_chat_is_refused() -> None:
    with pytest.raises(ValueError, match="mix embeddings and chat"):
        upstream_entries(["m=http://a/v1,embeddings", "m=http://b/v1"])


@pytest.mark.parametrize(("text", "message"), [
    ("models: [", "not valid YAML"),
    ("pools: {}", "expected one key, 'models'"),
    ("models: {m: {backends: []}}", "models.m.backends: expected a list of one backend or more"),
    ("models: {m: {retry: 3, backends: [{url: 'http://a'}]}}", "models.m: unknown key(s) retry"),
    ("models: {m: {backends: [{url: 'http://a', api-key: sk-123}]}}",
     "models.m.backends[0]: unknown key(s) api-key (known: "),
    ("models: {m: {backends: [{model: x}]}}", "models.m.backends[0]: expected a mapping with 'url'"),
    ("models: {m: {backends: [{url: 'ftp://a'}]}}", "models.m.backends[0] expects NAME=URL"),
    ("models: {m: {backends: [{url: 'http://a', weight: 0}]}}", "models.m.backends[0]: weight must be above 0"),
    ("models: {m: {failures: 0, backends: [{url: 'http://a'}]}}", "models.m: failures must be at least 1"),
    ("models: {m: {health_timeout_s: 0, backends: [{url: 'http://a'}]}}",
     "models.m: health_timeout_s must be above 0"),
    ("models: {m: {embeddings: 'yes', backends: [{url: 'http://a'}]}}", "models.m.embeddings: expected true or false"),
    ("models: {m: {backends: [{url: 'http://a', model: 'x,y'}]}}", "models.m.backends[0].model: a comma"),
])
def test_a_bad_backends_file_is_refused_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        parse_backends_file(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path))


def test_secrets_in_the_file_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("models: {m: {backends: [{url: 'http://a', client-secret: s3cr3t}]}}")
    with pytest.raises(ValueError, match="secrets are named by environment variable, never written here") as raised:
        parse_backends_file(path)
    assert "s3cr3t" not in str(raised.value)
