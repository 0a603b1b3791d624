"""Keras 3 + ttop: a tiny model on synthetic data, seconds on a CPU.

    pip install 'ttop-monitor[integrations]'     # or: pip install keras torch
    KERAS_BACKEND=torch python examples/keras_example.py   # writes progress/keras-example.json
    ttop progress                                           # in another terminal

The learning rate follows an ExponentialDecay schedule; edit ``lr`` in ttop
(key ``e``): the schedule goes on, scaled by the edit.
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ttop.integrations.keras import TtopCallback  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="progress")
    ap.add_argument("--name", default="keras-example")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=20, help="train batches per epoch (batch size 8)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--interval", type=float, default=1.0, help="ttop write interval")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batches * 8 * 5 // 4, 16)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    schedule = keras.optimizers.schedules.ExponentialDecay(args.lr, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(
        x, y, batch_size=8, epochs=args.epochs, validation_split=0.2, verbose=0,
        callbacks=[TtopCallback(folder=args.folder, run_name=args.name, interval=args.interval)],
    )


if __name__ == "__main__":
    main()
