"""The web pages (the Screener, history, status, login) and the HTTP server
they share with /health, /livez and /metrics.

``access`` (who may use the pages: pure, read with the settings), ``auth``
(passwords, sessions, login throttling: pure), ``guard`` (origins and headers:
pure), ``screener`` and ``decisions`` (what the pages read and do on the
account), ``app`` (the Starlette routes) and ``server`` (uvicorn in the
service's own event loop, bounded). Importing this package imports none of them.
"""
