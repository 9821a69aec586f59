"""Prompt -> PNG: the unified transformer plans visual tokens, the renderer draws them."""
