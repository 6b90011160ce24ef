"""ACD core: agents and their states, queued callers, strategies, the distributor."""
