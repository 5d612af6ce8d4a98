"""Mailroom: HEY's Screener for Fastmail and any JMAP server."""

__version__ = "0.1.0"
