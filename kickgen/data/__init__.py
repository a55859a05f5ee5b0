"""Corpus tooling: collect, fetch open sources, synthesise, augment, build and describe the kick corpus."""
