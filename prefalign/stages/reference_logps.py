"""Rule reference_logps: the base model's log-probs of every response of a preference set,
once (`prefalign.reference`)."""
from __future__ import annotations

import logging

from .. import reference
from ..data import open_record_image
from ..io import read_jsonl

log = logging.getLogger(__name__)


def reference_logps(*, prefs_path, model_dir, out_path, device: str, dtype: str) -> None:
    from ..methods.records import validate_record
    from ..model import load_model

    records = [validate_record(r, prefs_path, f"line {i}") for i, r in enumerate(read_jsonl(prefs_path), 1)]
    model, processor = load_model(model_dir, dtype=dtype, device=device)
    per_record = reference.compute(records, model.eval(), processor,
                                   lambda r: open_record_image(r, prefs_path))
    reference.write(out_path, per_record)
    log.info("reference log-probs of %d responses of %d records -> %s",
             sum(map(len, per_record)), len(records), out_path)
