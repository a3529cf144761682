"""The one preference-record format every method writes and every objective reads.

    {"id", "image", ["image_sha256",] "question",   # the digest: images outside the world
     "groups": [[response, ...], ...],   # ranked, best group first; no order inside a group
     "extras": {...}}                     # method-specific (scores, weights, provenance)
    response = {"text", "n_tokens", "source", ...per-response extras}

A SeVa pair is two groups of one; SMPRO has three groups of three; ConSR ranks fifteen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..io import RecordError, require
from ..settings import ObjectiveSettings


def make_record(prompt: dict, groups: list[list[dict]], **extras) -> dict:
    digest = {"image_sha256": prompt["image_sha256"]} if "image_sha256" in prompt else {}
    return {"id": prompt["id"], "image": prompt["image"], **digest, "question": prompt["question"],
            "groups": groups, "extras": extras}


def validate_record(rec: dict, path, line) -> dict:
    for f in ("id", "image", "question"):
        require(rec, f, str, path, line)
    groups = require(rec, "groups", list, path, line)
    if len(groups) < 2:
        raise RecordError(path, line, "groups", f"need at least 2 ranked groups, got {len(groups)}")
    for g, group in enumerate(groups):
        if not isinstance(group, list) or not group:
            raise RecordError(path, line, f"groups[{g}]", "expected a non-empty list of responses")
        for k, resp in enumerate(group):
            if not isinstance(resp, dict):
                raise RecordError(path, line, f"groups[{g}][{k}]", "expected an object")
            require(resp, "text", str, path, line)
    return rec


def chosen_rejected(rec: dict) -> tuple[dict, dict]:
    """The pair a pairwise objective trains on: best of the top group vs the bottom group."""
    return rec["groups"][0][0], rec["groups"][-1][0]


def pair_groups(rec: dict) -> list[list[dict]]:
    chosen, rejected = chosen_rejected(rec)
    return [[chosen], [rejected]]


def all_groups(rec: dict) -> list[list[dict]]:
    return rec["groups"]


@dataclass(frozen=True)
class Objective:
    """A training objective: which ranked groups of a record it scores, and its loss.

    `loss(scored, cfg) -> (scalar, metrics)` receives, for a batch of B items,
    `policy` and `ref` [B, Nmax] summed response log-probs (responses in group order,
    best group first, zero-padded), `group_sizes` (one tuple per item; they say which
    entries are real), per-token `policy_tokens`, `ref_tokens`, `token_mask` [B, Nmax, T]
    and the `records`. Where `scores_corrupt(cfg)` is true it also receives
    `policy_corrupt_tokens` [B, Nmax, T]: the policy's token log-probs, without gradient, with
    each record's corrupt image (`extras.corrupt`: the augmentation it was built with)."""
    select: Callable[[dict], list[list[dict]]]
    loss: Callable[[dict, ObjectiveSettings], tuple]
    scores_corrupt: Callable[[ObjectiveSettings], bool] = lambda cfg: False
