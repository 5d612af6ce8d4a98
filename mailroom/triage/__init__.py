"""The forward pass: labelled senders triaged (scan, plan, the steps, the
ledger bookkeeping), the error label on what cannot be, dry runs."""
