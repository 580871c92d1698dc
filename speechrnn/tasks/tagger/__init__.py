"""Speech / non-speech frame tagging: labels from a CTC alignment, model, training task, inference (TaggerVAD) and
VAD scoring."""
