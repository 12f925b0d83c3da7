"""vaebench: a benchmark and evaluation suite for VAE-family generative models."""

__version__ = "0.1.0"
