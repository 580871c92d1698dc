"""Character language model (many-to-many, generative): an RNN of any cell of the family predicting the next character
of a line of text; trained through training.loop.fit, used for bits per character, shallow fusion in CTC beam search
(speechrnn.fusion) and text generation."""
