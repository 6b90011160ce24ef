"""Pure media: RTP/RTCP packets, G.711, RFC 4733 DTMF and in-band detection, prompts,
pacing arithmetic. No sockets, no asyncio, no wall clock: callers pass `now`."""
