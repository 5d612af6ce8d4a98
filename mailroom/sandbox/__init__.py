"""The local Fastmail stand-in: JMAP mail, RFC 9610 contacts and CardDAV over one
store, on loopback, never more lenient than the real servers and sharing no
code with the clients it stands in for; and the demo that runs the service
against it."""
