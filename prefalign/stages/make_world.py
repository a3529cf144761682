"""Rule make_world: the synthetic world (images with exact ground truth, prompt pool,
evaluation sets)."""
from __future__ import annotations

import logging

from .. import world as W
from ..settings import WorldSettings
from ..world_build import build_world

log = logging.getLogger(__name__)


def make_world(*, out_dir, world: WorldSettings) -> None:
    spec = W.WorldSpec(image_size=world.image_size, grid=world.grid,
                       cooccurrence=world.cooccurrence, annotator_prior=world.annotator_prior,
                       colour_prior=world.colour_prior)
    counts = build_world(out_dir, world.seed, spec, world.n_sft_images, world.n_pool_images, world.n_eval,
                         reasoning_share=world.reasoning_share, consr_share=world.consr_share,
                         pool_family_weights=world.pool_family_weights)
    log.info("world written to %s: %s", out_dir, counts)
