"""Passage retrieval for the demo model: Okapi BM25 over Markdown sections.

The demo model answers from chatlake's own documentation, so the index is small
(a few hundred passages) and is built in memory at start-up.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BM25_K1 = 1.5
BM25_B = 0.75
MAX_PASSAGE_CHARS = 700
CODE_WEIGHT = 0.5
HEADING_WEIGHT = 3

PRIMER_PATH = Path(__file__).with_name("primer.md")

_WORD = re.compile(r"[a-z0-9_]+")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")

# Words too common to tell passages apart; keeping them only adds noise.
_STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or so "
    "that the this to was what when where which who why with you your".split()
)


@dataclass(frozen=True)
class Passage:
    source: str
    heading: str
    text: str


def tokenize(text: str) -> list[str]:
    """Lower-case word stems without stop words; the unit both sides of BM25 use."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]


def stem(word: str) -> str:
    """A crude English stemmer: enough that "starting" finds "start"."""
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def split_markdown(source: str, text: str) -> list[Passage]:
    """Cut a Markdown document into passages of whole paragraphs under one heading.

    Paragraphs of a section are packed together up to MAX_PASSAGE_CHARS, so a
    sentence that introduces a list or a code block stays with it.
    """
    passages: list[Passage] = []
    heading = source
    in_code = False
    paragraphs: list[str] = []
    block: list[str] = []

    def close_block() -> None:
        body = "\n".join(block).strip()
        block.clear()
        if body:
            paragraphs.extend(_bounded(body))

    def close_section() -> None:
        close_block()
        passages.extend(Passage(source, heading, text) for text in _packed(paragraphs))
        paragraphs.clear()

    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            close_section()
            heading = match.group(2).strip()
        elif not line.strip() and not in_code:
            close_block()
        else:
            block.append(line)
    close_section()
    return passages


def _packed(paragraphs: list[str]) -> list[str]:
    packed: list[str] = []
    for paragraph in paragraphs:
        if packed and len(packed[-1]) + len(paragraph) + 2 <= MAX_PASSAGE_CHARS:
            packed[-1] = f"{packed[-1]}\n\n{paragraph}"
        else:
            packed.append(paragraph)
    return packed


def _bounded(body: str) -> list[str]:
    # Long paragraphs (big tables) are cut on line boundaries so one passage never
    # swamps an answer.
    pieces: list[str] = []
    current = ""
    for line in body.splitlines():
        if current and len(current) + len(line) > MAX_PASSAGE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    pieces.append(current)
    return pieces


class Bm25Index:
    """Ranks passages for a query by Okapi BM25 (heading words count as text)."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self._docs = [_terms(p) for p in passages]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._average_length = sum(self._lengths) / max(len(self._docs), 1)
        document_frequency: Counter[str] = Counter()
        for doc in self._docs:
            document_frequency.update(doc.keys())
        total = len(self._docs)
        self._idf = {
            word: math.log(1 + (total - count + 0.5) / (count + 0.5))
            for word, count in document_frequency.items()
        }

    def search(self, query: str, limit: int = 3) -> list[tuple[float, Passage]]:
        """The best ``limit`` passages with a positive score, best first."""
        words = tokenize(query)
        scored = []
        for position, doc in enumerate(self._docs):
            score = self._score(words, doc, self._lengths[position])
            if self.passages[position].text.startswith("```"):
                score *= CODE_WEIGHT  # prose answers a question better than code
            if score > 0:
                scored.append((score, position))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [(score, self.passages[pos]) for score, pos in scored[:limit]]

    def _score(self, words: list[str], doc: Counter[str], length: int) -> float:
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (self._average_length or 1))
        score = 0.0
        for word in words:
            frequency = doc.get(word, 0)
            if frequency:
                score += (
                    self._idf[word] * frequency * (BM25_K1 + 1) / (frequency + norm)
                )
        return score


def _terms(passage: Passage) -> Counter[str]:
    # A heading names what its section is about, so its words count extra.
    terms = Counter(tokenize(passage.text))
    for word in tokenize(passage.heading):
        terms[word] += HEADING_WEIGHT
    return terms


def default_documents() -> list[Path]:
    """chatlake's README and docs/*.md from a source checkout, plus the bundled primer.

    The primer ships inside the package, so an installed copy still has something
    to answer from.
    """
    root = Path(__file__).resolve().parents[3]
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    found += sorted((root / "docs").glob("*.md"))
    return [*found, PRIMER_PATH]


def load_index(paths: list[Path]) -> Bm25Index:
    """An index over Markdown files; unreadable ones are logged and skipped."""
    passages: list[Passage] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("demo model skips %s: %s", path, error)
            continue
        passages.extend(split_markdown(path.name, text))
    logger.info(
        "demo model indexed %d passages from %d files", len(passages), len(paths)
    )
    return Bm25Index(passages)
