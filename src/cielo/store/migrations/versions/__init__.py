"""One module per schema revision, oldest first (v0001_baseline is the schema of the last release before
migrations)."""
