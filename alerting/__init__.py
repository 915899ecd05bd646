"""predwatch alerting."""
