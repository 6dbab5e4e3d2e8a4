"""Text into numbers, host side, as Keras's preprocessing does it: :class:`Tokenizer` turns sentences into lists of
word indices (or bag-of-words rows) and :func:`pad_sequences` makes those lists one rectangular array, ready for
``Embedding``. Both are re-exported from :mod:`netcore.utils`."""

from __future__ import annotations

import collections
import json
import math

import numpy as np

from netcore.errors import ConfigurationError, ShapeError

#: Keras's default filters: punctuation, tabs and newlines become separators.
FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0) -> np.ndarray:
    """Lists of numbers as one ``(len(sequences), maxlen)`` array (Keras's function): each list cut to ``maxlen``
    (``truncating="pre"`` drops its start, ``"post"`` its end) and filled with ``value`` up to ``maxlen``
    (``padding="pre"`` in front, ``"post"`` behind); ``maxlen=None`` is the longest list. Lists of vectors
    (sequences of feature rows) pad to ``(n, maxlen, features)``."""
    for name, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ConfigurationError(f"pad_sequences {name} must be 'pre' or 'post', got {choice!r}")
    try:
        rows = [np.asarray(s) for s in sequences]
    except TypeError:
        raise ShapeError("pad_sequences takes a list of sequences (lists or arrays)") from None
    if maxlen is not None and (not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 0):
        raise ConfigurationError(f"pad_sequences maxlen must be a non-negative integer or None, got {maxlen!r}")
    tails = {row.shape[1:] for row in rows if row.size}
    if len(tails) > 1:
        raise ShapeError(f"pad_sequences: the sequences' steps have different shapes {sorted(tails)}")
    tail = tails.pop() if tails else ()
    length = max((len(row) for row in rows), default=0) if maxlen is None else maxlen
    out = np.full((len(rows), length, *tail), value, dtype=dtype)
    if np.issubdtype(out.dtype, np.integer) and isinstance(value, float) and not float(value).is_integer():
        raise ConfigurationError(f"pad_sequences: value {value} does not fit dtype {dtype}")
    for i, row in enumerate(rows):
        if not row.size or not length:
            continue
        kept = row[-length:] if truncating == "pre" else row[:length]
        if padding == "pre":
            out[i, length - len(kept) :] = kept
        else:
            out[i, : len(kept)] = kept
    return out


class Tokenizer:
    """Word (or character) indices for texts, as Keras 2's ``Tokenizer``.

    ``fit_on_texts(texts)`` counts the words (lower-cased with ``lower``, the ``filters`` characters removed, split
    on ``split``) and numbers them by frequency, most frequent first, from 1 (0 is left for padding); ties keep the
    order of first appearance. ``num_words`` keeps the ``num_words - 1`` most frequent in what the conversions return
    (``word_index`` still lists all). ``oov_token`` takes index 1 and stands in for words not kept; without it they
    are dropped. ``texts_to_sequences`` and ``sequences_to_texts`` convert both ways; ``texts_to_matrix`` gives one
    bag-of-words row per text (``mode`` ``"binary"``, ``"count"``, ``"freq"`` or ``"tfidf"``, Keras's formulas).
    ``to_json`` and :meth:`from_json` keep a fitted tokenizer beside a model.

    What it does not do: no stemming, no sub-words or n-grams, no language-aware splitting (a word is what ``split``
    separates after ``filters``), and text is not normalised beyond lower-casing (accents stay).
    """

    def __init__(self, num_words=None, filters=FILTERS, lower=True, split=" ", char_level=False, oov_token=None):
        if num_words is not None and (not isinstance(num_words, int) or num_words < 1):
            raise ConfigurationError(f"Tokenizer num_words must be a positive integer or None, got {num_words!r}")
        self.num_words, self.filters, self.lower, self.split = num_words, filters, bool(lower), split
        self.char_level, self.oov_token = bool(char_level), oov_token
        self.word_counts: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.word_docs: dict[str, int] = {}
        self.document_count = 0
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    def words(self, text: str) -> list[str]:
        """``text`` as the tokenizer reads it."""
        if not isinstance(text, str):
            raise ShapeError(f"Tokenizer reads strings, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        if self.char_level:
            return list(text)
        text = text.translate(str.maketrans({c: self.split for c in self.filters}))
        return [word for word in text.split(self.split) if word]

    def fit_on_texts(self, texts) -> Tokenizer:
        texts = [texts] if isinstance(texts, str) else list(texts)
        for text in texts:
            words = self.words(text)
            self.document_count += 1
            for word in words:
                self.word_counts[word] = self.word_counts.get(word, 0) + 1
            for word in set(words):
                self.word_docs[word] = self.word_docs.get(word, 0) + 1
        ranked = sorted(self.word_counts, key=lambda w: -self.word_counts[w])  # stable: ties by first appearance
        if self.oov_token is not None:
            ranked = [self.oov_token] + [w for w in ranked if w != self.oov_token]
        self.word_index = {word: i for i, word in enumerate(ranked, start=1)}
        self.index_word = {i: word for word, i in self.word_index.items()}
        return self

    def _kept(self, index: int) -> bool:
        return self.num_words is None or index < self.num_words

    def texts_to_sequences(self, texts) -> list[list[int]]:
        if not self.word_index:
            raise ConfigurationError("call fit_on_texts() before texts_to_sequences()")
        texts = [texts] if isinstance(texts, str) else texts
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        sequences = []
        for text in texts:
            row = []
            for word in self.words(text):
                index = self.word_index.get(word)
                if index is not None and self._kept(index):
                    row.append(index)
                elif oov is not None:
                    row.append(oov)
            sequences.append(row)
        return sequences

    def sequences_to_texts(self, sequences) -> list[str]:
        joiner = "" if self.char_level else " "
        return [
            joiner.join(self.index_word[i] for i in row if i in self.index_word and self._kept(i)) for row in sequences
        ]

    def texts_to_matrix(self, texts, mode: str = "binary") -> np.ndarray:
        """One row per text with a column per word index (``num_words`` columns, else one per word + 1)."""
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ConfigurationError(f"texts_to_matrix mode must be binary, count, freq or tfidf, got {mode!r}")
        sequences = self.texts_to_sequences(texts)
        width = self.num_words or len(self.word_index) + 1
        matrix = np.zeros((len(sequences), width))
        for i, row in enumerate(sequences):
            counts = collections.Counter(row)
            for index, count in counts.items():
                if mode == "binary":
                    matrix[i, index] = 1
                elif mode == "count":
                    matrix[i, index] = count
                elif mode == "freq":
                    matrix[i, index] = count / len(row)
                else:  # Keras's tf-idf: (1 + log tf) * log(1 + documents / (1 + documents with the word))
                    docs = self.word_docs.get(self.index_word.get(index), 0)
                    matrix[i, index] = (1 + math.log(count)) * math.log(1 + self.document_count / (1 + docs))
        return matrix

    def to_json(self) -> str:
        return json.dumps(
            {
                "config": {
                    "num_words": self.num_words,
                    "filters": self.filters,
                    "lower": self.lower,
                    "split": self.split,
                    "char_level": self.char_level,
                    "oov_token": self.oov_token,
                },
                "word_counts": list(self.word_counts.items()),
                "word_docs": self.word_docs,
                "document_count": self.document_count,
                "word_index": self.word_index,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        tokenizer = cls(**data["config"])
        tokenizer.word_counts = collections.OrderedDict(data["word_counts"])
        tokenizer.word_docs = dict(data["word_docs"])
        tokenizer.document_count = int(data["document_count"])
        tokenizer.word_index = {word: int(i) for word, i in data["word_index"].items()}
        tokenizer.index_word = {i: word for word, i in tokenizer.word_index.items()}
        return tokenizer
