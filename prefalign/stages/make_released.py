"""Rule make_released: the miniature's stand-in for a released preference dataset (POVID's
recipe on the world's SFT split, `prefalign.released.povid_like`), in POVID's format."""
from __future__ import annotations

import logging
from pathlib import Path

from ..io import read_json, write_json
from ..released import povid_like

log = logging.getLogger(__name__)


def make_released(*, out_path, world_dir, recipe: str, n_images: int, seed: int) -> None:
    if recipe != "povid":
        raise ValueError(f"released_data recipe {recipe!r}: only 'povid' is known")
    records, counts = povid_like(read_json(Path(world_dir) / "sft.json"), n_images, seed)
    write_json(out_path, records)
    log.info("%s: %s", out_path, counts)
