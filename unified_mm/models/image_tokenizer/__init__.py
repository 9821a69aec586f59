"""Stage 1: the image tokenizer (continuous latent + FSQ visual tokens)."""

from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.models.image_tokenizer.fsq import FSQ

__all__ = ["FSQ", "TokenizerAutoencoder"]
