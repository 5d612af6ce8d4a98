"""Whole-domain decisions: which domain a sender is of, which domains may be
decided, and the rules a pass carries out."""
