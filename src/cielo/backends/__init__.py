"""Model backends behind one narrow interface (backends.base.ModelBackend)."""
