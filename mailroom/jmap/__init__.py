"""JMAP (RFC 8620/8621): session discovery and a batched method-call client."""
