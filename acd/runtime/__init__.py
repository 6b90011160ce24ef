"""The only asyncio in the project: sockets, timers, signal handling, the daemon's main."""
