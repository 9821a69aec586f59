"""unified_mm: a JAX/Flax framework for unified text-image models."""

__version__ = "0.1.0"
