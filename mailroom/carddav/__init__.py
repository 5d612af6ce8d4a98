"""CardDAV (RFC 6352): discovery, contact search, vCards and contact groups."""
