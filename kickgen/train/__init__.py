"""Training: ``kickgen train vae | diffusion | vocoder`` (see ``kickgen.train.cli``).

Each run keeps its resumable state (``RUN_DIR/train_state.pt``: weights, EMA, optimisers,
schedulers, discriminators, step, config) apart from the exported inference checkpoint
(``RUN_DIR/export/<guide file name>``: weights only, loadable with ``weights_only=True``).
"""
