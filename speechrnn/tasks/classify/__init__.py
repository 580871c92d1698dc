"""Utterance classification (one label per recording): model, training task (with speaker adaptation) and
inference."""
