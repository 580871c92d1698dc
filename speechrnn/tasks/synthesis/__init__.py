"""Handwriting synthesis (one-to-many): an LSTM stack with a soft attention window over the text and a
mixture-density output writes pen strokes; trained through training.loop.fit, used by `speechrnn write`, the
page's "Write" panel and `inference.write`."""
