"""The ledger: every decision Mailroom made, kept in one SQLite file.

What was decided (a sender or a domain, its category, the one before), by
what (a label on the phone, the command line), and what it did to the account
(the contact, the groups joined and left, each email's mailboxes before and
after), so it can be shown and taken back exactly.
"""
