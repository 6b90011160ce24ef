"""IVR trees: the model loaded from YAML, validation, and the walker state machine."""
