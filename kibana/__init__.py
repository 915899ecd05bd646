"""predwatch kibana."""
