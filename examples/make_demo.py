"""Train the bundled demo model (a small digits CNN) and write its data, reproducibly and offline.

python examples/make_demo.py --out examples/digits_cnn --data examples/digits.npz
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

from digits import accuracy, build_cnn, load_digits_32, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="SavedModel folder to write")
    parser.add_argument("--data", type=Path, required=True, help=".npz with x, y to write")
    args = parser.parse_args()

    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    x, y = load_digits_32()
    train_x, train_y = x[:1200], y[:1200]
    model = train(build_cnn(tf_keras), train_x, train_y, epochs=5)
    print(f"demo model: held-out accuracy {accuracy(model.predict(x[1200:], verbose=0), y[1200:]):.3f}")
    tf.saved_model.save(model, str(args.out))
    # The build data is the held-out part: edgebuild splits it into calibration and validation itself.
    np.savez_compressed(args.data, x=x[1200:], y=y[1200:])


if __name__ == "__main__":
    main()
