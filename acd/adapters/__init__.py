"""Adapters to the outside world that are not SIP: store, event bus, recordings."""
