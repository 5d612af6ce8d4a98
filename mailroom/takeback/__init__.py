"""Taking decisions back: what an undo would do (pure, and the one home of
"what still stands"), carrying it out for many senders at once, ``@ToScreener``
from a pass, a domain rule's undo and ``reset``'s rounds."""
