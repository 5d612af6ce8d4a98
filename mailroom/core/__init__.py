"""Pure building blocks shared by the clients and the service (no IO)."""
