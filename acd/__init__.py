"""The application: configuration, engine, asyncio runtime, adapters and admin API."""
