"""Whole-domain decisions: which domain a sender is of, which domains may be decided."""
