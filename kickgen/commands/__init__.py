"""Command modules of the ``kickgen`` console command that belong to no other stage.

Each module exposes ``register(subparsers)`` (see :mod:`kickgen.cli`).
"""
