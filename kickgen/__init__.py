"""kickgen: kick-drum one-shots from a latent diffusion model conditioned on keywords."""

__version__ = "0.1.0"
