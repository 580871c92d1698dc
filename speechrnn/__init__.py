"""speechrnn: speech and online-handwriting recognition with recurrent networks and CTC."""

__version__ = "0.1.0"
