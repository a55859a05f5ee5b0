"""The four networks of kickgen and their config dataclasses.

``KickVAE`` (log-mel ↔ latent), ``LatentUNet`` + ``NoiseScheduler`` (latent diffusion),
``KeywordEncoder`` (prompt → conditioning vector), ``HiFiGANGenerator`` (log-mel → waveform).
The discriminators used to train the vocoder live in ``kickgen.models.discriminators`` and are not
imported here: inference never needs them.
"""

from kickgen.models.autoencoder import KickVAE, VAEConfig
from kickgen.models.diffusion import DiffusionConfig, LatentUNet, NoiseScheduler
from kickgen.models.text_encoder import KeywordEncoder
from kickgen.models.vocoder import HiFiGANGenerator, VocoderConfig

__all__ = [
    "DiffusionConfig",
    "HiFiGANGenerator",
    "KeywordEncoder",
    "KickVAE",
    "LatentUNet",
    "NoiseScheduler",
    "VAEConfig",
    "VocoderConfig",
]
