"""Push: the JMAP EventSource stream deciding when passes run.

A pure core (the SSE decoder, the link and its connection state machine, the
scheduler, policy, backoff, debounce), driven by messages and explicit times
and returning actions, in the manner of h11; the asyncio shells (stream
reader, supervisor) carry the actions out."""
