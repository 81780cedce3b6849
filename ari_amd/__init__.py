"""ari-amd: answering-machine detection for Asterisk over ARI."""

__version__ = "0.1.0"
