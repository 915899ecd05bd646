"""Everything predwatch keeps in Elasticsearch: results, baselines, state, and reading them back."""
