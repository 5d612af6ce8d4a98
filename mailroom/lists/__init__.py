"""Mailing lists decided once (``@WholeList``): a list is known by its
``List-Id`` (RFC 2919). ``listid`` reads and compares list ids (pure)."""
