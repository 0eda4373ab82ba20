"""Intercept mode: a loopback HTTP CONNECT proxy that answers for Azure's own host names with Cielo, so code
that names `login.microsoftonline.com` or `{name}.openai.azure.com` runs against Cielo with environment
variables only (HTTPS_PROXY and a CA bundle). See docs/zero-code-change.md."""
