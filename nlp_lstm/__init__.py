"""nlp_lstm: an LSTM written from the gate equations in Keras 3, and two apps built on it."""

__version__ = "0.2.0"
