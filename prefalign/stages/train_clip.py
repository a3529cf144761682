"""Rule train_clip: the miniature's open_clip model for ASPO's image-sentence similarity."""
from __future__ import annotations

import logging
from pathlib import Path

from .. import world as W
from ..data import load_conversations, open_image
from ..io import atomic_path, write_csv
from ..settings import ClipSettings

log = logging.getLogger(__name__)


def world_sentences(world_dir) -> list[tuple[str, str]]:
    """(image, sentence true of it): description sentences and reasoning evidence of the SFT split."""
    from ..methods.aspo import sentence_char_starts

    pairs = []
    for c in load_conversations(Path(world_dir) / "sft.json", require_answers=True):
        for t in c.turns:
            if t.question == W.DESCRIBE_QUESTION:
                text = t.answer
            elif W.REASONING_PROMPT in t.question:
                text = t.answer.partition(". ")[2]  # the evidence, not the short answer
            else:
                continue
            starts = sentence_char_starts(text) + [len(text)]
            pairs += [(c.image, text[a:b].strip()) for a, b in zip(starts, starts[1:]) if text[a:b].strip()]
    return pairs


def train_clip(*, world_dir, out_dir, log_csv, clip: ClipSettings) -> None:
    """Trained on 90% of the SFT images' sentences; the log's last row holds retrieval
    accuracy on the other 10%."""
    from ..clip_similarity import load_clip, retrieval_accuracy, train_world_clip

    pairs = world_sentences(world_dir)
    images = sorted({i for i, _ in pairs})
    held = set(images[int(0.9 * len(images)):])

    def load(name):
        return open_image(world_dir, name, Path(world_dir) / "sft.json", name)

    with atomic_path(out_dir) as tmp:
        rows = train_world_clip([p for p in pairs if p[0] not in held], load, tmp, clip, clip.seed)
        acc = retrieval_accuracy(load_clip(clip, tmp), [p for p in pairs if p[0] in held][:400], load)
    log.info("world CLIP: held-out retrieval accuracy %.3f", acc)
    write_csv(log_csv, rows + [{"step": "held_out_retrieval_accuracy", "loss": acc}])
