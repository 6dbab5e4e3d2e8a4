"""Keras code as course notes write it runs on netcore with only its imports changed. Each snippet below is kept
verbatim (the notes' variable names, argument spellings and idioms); only the import lines differ from Keras's."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

#: What replaces ``from keras.models import Sequential`` and friends.
IMPORTS = """
from netcore import Sequential
from netcore.layers import Dense, Dropout, BatchNormalization, Conv2D, MaxPooling2D, Flatten, LSTM
from netcore.optimizers import Adam, SGD, RMSprop
from netcore.utils import to_categorical
"""


def run(snippet: str, **data) -> dict:
    scope = dict(data)
    exec(IMPORTS + textwrap.dedent(snippet), scope)  # noqa: S102 - the point of the test
    return scope


def scaled_split(X, y, seed=0):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def test_the_churn_network_with_add_and_input_dim():
    X, y = make_classification(n_samples=1000, n_features=11, n_informative=6, random_state=0)
    X_train, X_test, y_train, y_test = scaled_split(X, y)
    scope = run(
        """
        classifier = Sequential()
        classifier.add(Dense(units=6, kernel_initializer="uniform", activation="relu", input_dim=11))
        classifier.add(Dense(units=6, kernel_initializer="uniform", activation="relu"))
        classifier.add(Dense(units=1, kernel_initializer="uniform", activation="sigmoid"))
        classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        classifier.fit(X_train, y_train, batch_size=10, epochs=100, verbose=0)
        y_pred = classifier.predict(X_test)
        y_pred = (y_pred > 0.5)
        """,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
    )
    assert (scope["y_pred"][:, 0] == y_test).mean() > 0.85


def test_digits_with_one_hot_labels_batch_normalization_and_a_validation_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = scaled_split(X, y)
    scope = run(
        """
        model = Sequential()
        model.add(Dense(128, activation="relu", input_shape=(64,)))
        model.add(BatchNormalization())
        model.add(Dropout(0.2))
        model.add(Dense(10, activation="softmax"))
        model.compile(optimizer=Adam(learning_rate=0.001), loss="categorical_crossentropy", metrics=["accuracy"])
        model.summary()
        history = model.fit(X_train, to_categorical(y_train), batch_size=32, epochs=30, validation_split=0.2,
                            verbose=0)
        score = model.evaluate(X_test, to_categorical(y_test), verbose=0)
        print("Test loss:", score[0])
        print("Test accuracy:", score[1])
        val_acc = history.history["val_accuracy"]
        """,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
    )
    assert isinstance(scope["score"], list) and scope["score"][1] > 0.95
    assert len(scope["val_acc"]) == 30


def test_breast_cancer_with_the_layer_list_and_sgd_momentum():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = scaled_split(X, y)
    scope = run(
        """
        model = Sequential([
            Dense(16, activation="relu", input_shape=(X_train.shape[1],)),
            Dropout(0.5),
            Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9), loss="binary_crossentropy",
                      metrics=["accuracy"])
        model.fit(X_train, y_train, epochs=50, batch_size=16, validation_data=(X_test, y_test), verbose=0)
        test_acc = model.evaluate(X_test, y_test, verbose=0)[1]
        probabilities = model.predict(X_test, verbose=0)
        """,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
    )
    assert scope["test_acc"] > 0.93
    assert scope["probabilities"].shape == (len(y_test), 1)


def test_a_small_cnn_on_digit_images():
    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 8, 8, 1)
    X_train, X_test, y_train, y_test = train_test_split(images, y, test_size=0.2, random_state=0, stratify=y)
    scope = run(
        """
        model = Sequential()
        model.add(Conv2D(16, kernel_size=(3, 3), activation="relu", input_shape=(8, 8, 1)))
        model.add(MaxPooling2D(pool_size=(2, 2)))
        model.add(Flatten())
        model.add(Dense(10, activation="softmax"))
        model.compile(loss="categorical_crossentropy", optimizer=RMSprop(learning_rate=0.003), metrics=["accuracy"])
        model.fit(X_train, to_categorical(y_train, 10), batch_size=32, epochs=20, verbose=0)
        score = model.evaluate(X_test, to_categorical(y_test, 10), verbose=0)
        """,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
    )
    assert scope["score"][1] > 0.93


def test_an_lstm_over_the_rows_of_digit_images():
    X, y = load_digits(return_X_y=True)
    rows = (X / 16.0).reshape(-1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(rows, y, test_size=0.2, random_state=0, stratify=y)
    scope = run(
        """
        model = Sequential()
        model.add(LSTM(32, input_shape=(8, 8)))
        model.add(Dense(10, activation="softmax"))
        model.compile(loss="sparse_categorical_crossentropy", optimizer=Adam(learning_rate=0.01),
                      metrics=["accuracy"])
        model.fit(X_train, y_train, epochs=15, batch_size=32, verbose=0)
        loss, acc = model.evaluate(X_test, y_test, verbose=0)
        """,
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
    )
    assert scope["acc"] > 0.9


def test_a_seed_gives_the_same_weights_whether_layers_are_added_or_listed():
    from netcore import Sequential
    from netcore.layers import Dense

    added = Sequential(seed=3)
    added.add(Dense(8, activation="relu", input_dim=5))
    added.add(Dense(2, activation="softmax"))
    listed = Sequential([Dense(8, activation="relu"), Dense(2, activation="softmax")], input_dim=5, seed=3)
    for a, b in zip(added.get_weights(), listed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_spellings_are_aliases_of_netcores_own():
    from netcore import Sequential
    from netcore.layers import BatchNorm, BatchNormalization, Dense
    from netcore.optimizers import Adam, RMSprop
    from netcore.utils import to_categorical

    adam = Adam(learning_rate=0.01, beta_1=0.8, epsilon=1e-7)
    assert (adam.lr, adam.betas, adam.eps) == (0.01, (0.8, 0.999), 1e-7)
    adam.learning_rate = 0.02
    assert adam.lr == 0.02
    assert RMSprop(learning_rate=0.1).lr == 0.1
    keras = BatchNormalization()
    assert isinstance(keras, BatchNorm) and (keras.convention, keras.momentum, keras.eps) == ("keras", 0.99, 1e-3)
    np.testing.assert_array_equal(to_categorical([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert to_categorical(np.array([[1], [0]])).shape == (2, 2)
    model = Sequential([Dense(3, input_shape=(4,)), Dense(2, activation="softmax")])
    assert model.input_shape == (4,)
    with pytest.raises(Exception, match="disagree"):
        Sequential([Dense(3, input_dim=4)], input_dim=5)
