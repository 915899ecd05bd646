"""Pure statistics, no I/O: baselines, window profiles, checks and the tests they run."""
