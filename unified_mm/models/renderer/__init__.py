"""Stage 3: the latent diffusion renderer (DiT + rectified flow + chunked rendering)."""

from unified_mm.models.renderer.model import Renderer

__all__ = ["Renderer"]
