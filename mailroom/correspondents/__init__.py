"""The people the user writes to: a sender waiting in the Screener to whom the
user has written (an email in Sent with them in To, Cc or Bcc) is triaged into
the category ``MAILROOM_TRUST_SENT`` names, as a decision with trigger ``sent``.

``recipients`` is pure (the Sent filter, exact matching of recipients, which
senders to ask about); ``screen`` reads the Screener and Sent for a pass.
"""
