"""Bounded in-memory stores: generated kicks, and the init kicks (uploads) they were varied from.

The server keeps every kick it generated for a while so the page (and ``curl``) can fetch it by
id, vary it, morph it and pack it. Keeping them in memory under a byte budget means a long session
can neither fill the disk nor grow without bound: a kick is its 2 s float32 WAV (352,880 bytes)
and its raw vocoder output (352,800 bytes, which the pack's clean-up starts from), so the default
64 MiB holds 95 kicks. Uploaded kicks live in an :class:`InitStore` of their own, never on disk.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from kickgen.audio import SAMPLE_RATE
from kickgen.output import kick_file_name


def encode_wav(wave: np.ndarray) -> bytes:
    """One mono clip ``(num_samples,)`` float32 in [-1, 1] -> WAV bytes (44.1 kHz, float32)."""
    buf = io.BytesIO()
    sf.write(
        buf,
        np.asarray(wave, dtype=np.float32).reshape(-1),
        SAMPLE_RATE,
        format="WAV",
        subtype="FLOAT",
    )
    return buf.getvalue()


def kick_filename(keywords: Iterable[str], seed: int) -> str:
    """``kick_<keywords>_s<seed, 10 digits>.wav``, as the CLI names it (:func:`kick_file_name`)."""
    return kick_file_name(list(keywords), seed)


@dataclass(frozen=True)
class StoredKick:
    """One generated kick: its WAV bytes and what made it."""

    id: str  # 16 hex characters, unguessable
    wav: bytes  # a complete WAV file
    seed: int
    keywords: tuple[str, ...]  # matched keywords of the prompt, for the download's file name
    recipe: dict | None = None  # what made it (kickgen.producer.recall)
    raw: np.ndarray | None = None  # float32 (88200,) vocoder output before the output stage

    @property
    def filename(self) -> str:
        return kick_filename(self.keywords, self.seed)

    @property
    def nbytes(self) -> int:
        return len(self.wav) + (0 if self.raw is None else int(self.raw.nbytes))

    def wave(self) -> np.ndarray:
        """The finished kick as float32 ``(L,)`` at 44.1 kHz (decoded from its WAV, bit-exact)."""
        data, _ = sf.read(io.BytesIO(self.wav), dtype="float32", always_2d=False)
        return data


class KickStore:
    """Thread-safe, insertion-ordered store bounded by item count and total bytes."""

    def __init__(self, max_items: int = 512, max_bytes: int = 64 * 2**20):
        if max_items < 1 or max_bytes < 1:
            raise ValueError(
                f"store limits must be positive, got max_items={max_items}, max_bytes={max_bytes}"
            )
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, StoredKick] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(
        self,
        wav: bytes,
        seed: int,
        keywords: tuple[str, ...] = (),
        recipe: dict | None = None,
        raw: np.ndarray | None = None,
    ) -> StoredKick:
        """Store one kick under a new id, evicting the oldest kicks until both limits hold."""
        kick = StoredKick(id=secrets.token_hex(8), wav=wav, seed=seed, keywords=tuple(keywords),
                          recipe=recipe, raw=raw)  # fmt: skip
        if kick.nbytes > self.max_bytes:
            raise ValueError(
                f"a {kick.nbytes}-byte kick does not fit a {self.max_bytes}-byte store"
            )
        with self._lock:
            self._items[kick.id] = kick
            self._bytes += kick.nbytes
            while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return kick

    def get(self, kick_id: str) -> StoredKick | None:
        with self._lock:
            return self._items.get(kick_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes


class InitStore:
    """Thread-safe store of init kicks by name (``memory:<sha256>``), oldest evicted first: the
    preprocessed waveforms ``(88200,)`` of uploads, so their variations can be regenerated."""

    def __init__(self, max_items: int = 64):
        if max_items < 1:
            raise ValueError(f"max_items must be positive, got {max_items}")
        self.max_items = max_items
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str, wave: torch.Tensor) -> None:
        with self._lock:
            self._items[name] = wave
            self._items.move_to_end(name)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get(self, name: str) -> torch.Tensor | None:
        with self._lock:
            return self._items.get(name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
