"""HTTP plumbing shared by the API routers (api/) and the portal (web/): reading bodies within a limit,
strict form parsing, which surface a path belongs to. Starlette-level only; no router lives here, and
nothing here imports api/ or web/ (pyproject.toml, [tool.importlinter])."""
