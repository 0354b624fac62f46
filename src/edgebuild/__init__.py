"""edgebuild: turn a trained TensorFlow/Keras model into validated artifacts for edge hardware."""

__version__ = "0.1.0"
