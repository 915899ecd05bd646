"""The scheduled analyzer: configuration, one window at a time, the scheduler."""
