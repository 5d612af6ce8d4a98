"""The account as the settings need it: the categories, the mailboxes they name,
what the account has and lacks (a pure review), making what it lacks
(``mailroom setup``) and the Fastmail rules the user creates by hand."""
