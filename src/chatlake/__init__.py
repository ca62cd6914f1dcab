"""chatlake: every chatbot turn and thumbs-up, streamed into Delta Lake tables."""

__version__ = "0.1.0"
