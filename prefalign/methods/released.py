"""A released preference dataset as it is (ConSR's Tables 5 and 10: POVID, RLAIF-V, trained
under the same setting as ConSR): each sampled prompt's chosen and rejected answer from the
prompt source's own file, no response sampled. Its labels come from the dataset's makers
(GPT-4V, a labeller model or ground truth), so the set is not self-supervised."""
from __future__ import annotations

from ..io import RecordError
from ..released import released_pairs
from ..settings import PreferenceSetSettings
from .records import make_record

NAME = "released"


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    return []


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources):
    fmt, path = resources["source"]
    pairs = released_pairs(fmt, path)
    records = []
    for p in prompts:
        if p["id"] not in pairs:
            raise RecordError(path, p["id"], "id", "no released pair for this prompt")
        chosen, rejected = pairs[p["id"]]
        records.append(make_record(p, [[{"text": chosen, "source": "released"}],
                                       [{"text": rejected, "source": "released"}]], method=NAME))
    return records, {"prompts": len(prompts), "kept": len(records), "rejected": {}}
