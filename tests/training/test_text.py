"""pad_sequences and Tokenizer, with Keras's meanings (the expected values are Keras's documented results)."""

from __future__ import annotations

import numpy as np
import pytest

import netcore
from netcore.utils import Tokenizer, pad_sequences

SEQUENCES = [[1, 2, 3], [4, 5], [6]]


def test_pad_sequences_pads_and_truncates_at_either_end():
    np.testing.assert_array_equal(pad_sequences(SEQUENCES), [[1, 2, 3], [0, 4, 5], [0, 0, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, padding="post"), [[1, 2, 3], [4, 5, 0], [6, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, maxlen=2), [[2, 3], [4, 5], [0, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, maxlen=2, truncating="post"), [[1, 2], [4, 5], [0, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, value=-1), [[1, 2, 3], [-1, 4, 5], [-1, -1, 6]])
    assert pad_sequences(SEQUENCES).dtype == np.int32
    floats = pad_sequences([[0.5], [1.5, 2.5]], dtype="float32", value=0.25)
    np.testing.assert_array_equal(floats, np.array([[0.25, 0.5], [1.5, 2.5]], "float32"))


def test_pad_sequences_of_vectors_and_of_nothing():
    steps = [np.ones((2, 3)), np.full((1, 3), 2.0)]
    out = pad_sequences(steps, dtype="float64")
    assert out.shape == (2, 2, 3) and out[1, 0].sum() == 0 and out[1, 1].sum() == 6
    assert pad_sequences([[], [1]]).tolist() == [[0], [1]]
    assert pad_sequences([]).shape == (0, 0)


def test_pad_sequences_refuses_what_it_cannot_do():
    with pytest.raises(netcore.ConfigurationError, match="padding must be 'pre' or 'post'"):
        pad_sequences(SEQUENCES, padding="middle")
    with pytest.raises(netcore.ConfigurationError, match="does not fit dtype int32"):
        pad_sequences(SEQUENCES, value=0.5)
    with pytest.raises(netcore.ShapeError, match="different shapes"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])


def test_tokenizer_numbers_words_by_frequency_as_keras_does():
    texts = ["The cat sat on the mat.", "The dog ate my homework!", "My cat, the dog."]
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(texts)
    assert list(tokenizer.word_index)[:4] == ["the", "cat", "dog", "my"]  # 4, 2, 2, 2 uses; ties by first seen
    assert tokenizer.word_index["the"] == 1 and tokenizer.document_count == 3 and tokenizer.word_docs["the"] == 3
    assert tokenizer.texts_to_sequences(["the cat ate a mat"]) == [[1, 2, 8, 7]]  # "a" is unknown: dropped
    assert tokenizer.sequences_to_texts([[1, 2, 8, 7]]) == ["the cat ate mat"]


def test_num_words_and_the_out_of_vocabulary_token():
    tokenizer = Tokenizer(num_words=3, oov_token="<unk>").fit_on_texts(["a a a b b c", "c d"])
    assert tokenizer.word_index == {"<unk>": 1, "a": 2, "b": 3, "c": 4, "d": 5}
    assert tokenizer.texts_to_sequences(["a b c z"]) == [[2, 1, 1, 1]]  # only indices below num_words are kept


def test_texts_to_matrix_modes_follow_keras():
    tokenizer = Tokenizer().fit_on_texts(["red red blue", "blue green"])
    counts = tokenizer.texts_to_matrix(["red red green"], mode="count")
    assert counts.tolist() == [[0, 2, 0, 1]]  # columns: padding, red, blue, green
    assert tokenizer.word_index == {"red": 1, "blue": 2, "green": 3}
    assert tokenizer.texts_to_matrix(["red red green"], mode="binary").tolist() == [[0, 1, 0, 1]]
    np.testing.assert_allclose(tokenizer.texts_to_matrix(["red red green"], mode="freq"), [[0, 2 / 3, 0, 1 / 3]])
    tfidf = tokenizer.texts_to_matrix(["red red green"], mode="tfidf")
    np.testing.assert_allclose(tfidf[0, 1], (1 + np.log(2)) * np.log(1 + 2 / 2))


def test_character_level_and_round_trips_through_json():
    tokenizer = Tokenizer(char_level=True, lower=False).fit_on_texts(["abba", "cab"])
    assert tokenizer.texts_to_sequences(["abc"]) == [[1, 2, 3]]
    again = Tokenizer.from_json(tokenizer.to_json())
    assert again.texts_to_sequences(["cab", "Z"]) == tokenizer.texts_to_sequences(["cab", "Z"]) == [[3, 1, 2], []]
    with pytest.raises(netcore.ConfigurationError, match="fit_on_texts"):
        Tokenizer().texts_to_sequences(["x"])
    with pytest.raises(netcore.ShapeError, match="reads strings"):
        Tokenizer().fit_on_texts([3])
