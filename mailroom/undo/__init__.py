"""Taking a decision back: what an undo would do (pure), and doing it."""
