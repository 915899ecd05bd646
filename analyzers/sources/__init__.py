"""Where window profiles come from: local JSONL and table files, Elasticsearch aggregations."""
