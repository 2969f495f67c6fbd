"""labaug: label augmentation and minimum-variance features, reproduced end to end."""

__version__ = "0.1.0"
