"""One writer per account: the lock every process holds while it writes the account."""
