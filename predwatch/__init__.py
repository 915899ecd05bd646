"""predwatch: the command line and the demo. The libraries live in logging_adapter, analyzers, kibana and alerting."""
