"""Pure SIP (RFC 3261 and friends): messages, URIs, transactions, dialogs, digest auth,
registrar bindings. No sockets, no asyncio, no wall clock: callers pass `now`."""
