"""`umm plan`: does a config fit a topology, and how fast will it run."""
