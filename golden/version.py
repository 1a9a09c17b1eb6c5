"""golden's version: recorded in every bundle manifest and certificate (a leaf: writers need no facade)."""

__version__ = "0.1.0"
