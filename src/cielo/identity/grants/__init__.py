"""One module per OAuth grant, each with `handle(ctx, request) -> dict` (authlib's layout)."""
