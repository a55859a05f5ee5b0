"""The seed guide's path for the VAE; the code lives in :mod:`kickgen.models.autoencoder`."""

from kickgen.models.autoencoder import KickVAE, VAEConfig

__all__ = ["KickVAE", "VAEConfig"]
