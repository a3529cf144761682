"""Reference log-probs, computed once per preference set and reused by every run, seed and
epoch that trains on it (rule `reference_logps`).

The reference is the base model, which never changes during training, so the log-prob of a
response under it depends only on the record. Training otherwise recomputes it at every step
of every epoch (TRL refuses to precompute it for image data). Every response of every
record is scored, whatever an objective selects, so one file serves DPO, MGP, ASPO and
ConSR runs alike.

File: safetensors with `token_logps` (all tokens of all responses, concatenated in record,
group and response order), `tokens` (the token count of each response) and `responses`
(the response count of each record).
"""
from __future__ import annotations

import logging

import torch

from .io import RecordError, atomic_path

log = logging.getLogger(__name__)
KEY = "reference_token_logps"  # the in-memory annotation training reads: one tensor per response


def responses_of(record: dict) -> list[dict]:
    return [r for group in record["groups"] for r in group]


def compute(records: list[dict], model, processor, load_image, batch_size: int = 16) -> list[list[torch.Tensor]]:
    """Per record, per response (group order): the reference's token log-probs, no gradient."""
    from tqdm import tqdm

    from .model import group_scoring_batch, shared_prefix_token_logps

    out = []
    for s in tqdm(range(0, len(records), batch_size), desc="reference log-probs", mininterval=5):
        part = records[s:s + batch_size]
        texts = [[r["text"] for r in responses_of(rec)] for rec in part]
        batch = group_scoring_batch(processor, [load_image(r) for r in part], [r["question"] for r in part], texts)
        with torch.no_grad():
            logps, mask = shared_prefix_token_logps(model, batch)
        rows = iter(zip(logps.float().cpu(), mask.cpu()))
        out += [[row[m.bool()] for row, m in (next(rows) for _ in t)] for t in texts]
    return out


def write(path, per_record: list[list[torch.Tensor]]) -> None:
    from safetensors.torch import save_file

    flat = [t for rec in per_record for t in rec]
    tensors = {"token_logps": torch.cat(flat) if flat else torch.zeros(0),
               "tokens": torch.tensor([len(t) for t in flat], dtype=torch.int64),
               "responses": torch.tensor([len(rec) for rec in per_record], dtype=torch.int64)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def attach(records: list[dict], path) -> None:
    """Give each record its stored reference log-probs (KEY), checking that the file was made
    from these very records; a mismatch names the record."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        stored = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: unreadable reference log-probs ({e}); rerun rule reference_logps") from None
    counts, tokens = stored["responses"].tolist(), stored["tokens"].tolist()
    if len(counts) != len(records):
        raise RecordError(path, f"{len(counts)} records", "responses",
                          f"the preference file has {len(records)} records; rerun rule reference_logps")
    chunks = iter(torch.split(stored["token_logps"], tokens))
    for rec, n in zip(records, counts):
        if n != len(responses_of(rec)):
            raise RecordError(path, rec["id"], "responses", f"{n} stored, the record has {len(responses_of(rec))}")
        rec[KEY] = [next(chunks) for _ in range(n)]


def selected(items: list[dict], groups: list[list[list[dict]]], width: int, mask: torch.Tensor) -> torch.Tensor:
    """The stored reference log-probs of the selected responses, in scoring order, right-padded
    to `width` [M, width]; each must have exactly as many tokens as the policy scored."""
    out = torch.zeros(len(mask), width, dtype=torch.float32)
    m = 0
    for rec, gs in zip(items, groups):
        index = {id(r): k for k, r in enumerate(responses_of(rec))}
        for r in (r for g in gs for r in g):
            row = rec[KEY][index[id(r)]]
            if len(row) != int(mask[m].sum()):
                raise RecordError("reference log-probs", rec["id"], "tokens",
                                  f"{len(row)} stored, {int(mask[m].sum())} scored (was the tokenizer changed?)")
            out[m, :len(row)] = row
            m += 1
    return out.to(mask.device)
