"""The text filters of ContactCard/query as Cyrus (Fastmail's server) reads them.

A filter value is a search query, not a substring: outside quotes it is
split into words, every one of which must be a word of the card's text;
``'…'`` is a phrase, matched as a case-insensitive substring, in which
``\\'``, ``\\"`` and ``\\\\`` are escapes. So ``o'brien@example.com`` sent
bare is the word ``o`` and the phrase ``brien@example.com``, and finds
nothing; ``'o\\'brien@example.com'`` finds the card. Mailroom must quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words as a full-text indexer cuts them: letters and digits, an apostrophe
# inside a word keeps it whole ("o'brien"), anything else separates.
_WORD = re.compile(r"\w+(?:'\w+)*")
_ESCAPABLE = "'\"\\"


def words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


@dataclass(frozen=True)
class TextQuery:
    terms: frozenset[str]
    phrases: tuple[str, ...]

    @classmethod
    def parse(cls, query: str) -> TextQuery:
        terms: set[str] = set()
        phrases: list[str] = []
        loose: list[str] = []
        phrase: list[str] | None = None
        i = 0
        while i < len(query):
            char = query[i]
            if phrase is None:
                if char == "'":
                    terms |= words("".join(loose))
                    loose = []
                    phrase = []
                else:
                    loose.append(char)
            elif char == "'":
                if phrase:
                    phrases.append("".join(phrase))
                phrase = None
            elif char == "\\" and i + 1 < len(query) and query[i + 1] in _ESCAPABLE:
                phrase.append(query[i + 1])
                i += 1
            else:
                phrase.append(char)
            i += 1
        terms |= words("".join(loose))
        if phrase:  # an unclosed phrase runs to the end
            phrases.append("".join(phrase))
        return cls(frozenset(terms), tuple(phrases))

    def matches(self, text: str) -> bool:
        """Every phrase is in ``text`` and every word is one of its words."""
        if not text:
            return False
        folded = text.casefold()
        return all(p.casefold() in folded for p in self.phrases) and self.terms <= words(text)
