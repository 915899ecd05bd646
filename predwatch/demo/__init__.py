"""The flights demo: the model service that logs, its HTTP form for compose, and the Elasticsearch run."""
