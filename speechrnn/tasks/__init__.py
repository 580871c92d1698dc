"""The tasks a model of this package is trained for, each a model + a training task for training.loop.fit + inference
that needs no trainer: ctc (recognition, many-to-many with Ty <= Tx), classify (many-to-one), tagger (Tx = Ty)."""
