"""predwatch analyzers."""
