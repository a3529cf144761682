"""Labelled data for continual SFT (SeVa's Table 3 on real data: parts of LLaVA-665k): each
sampled prompt's answer as its source has it (a LLaVA file's gpt turn, a released pair's
chosen one) as the chosen response, for the `sft` objective. Against it, the base model's first
sample of `generation` where one is set (a pair DPO can train on too); without one, the
answer itself, a tied pair that only `sft` may train on (the config check says so), so that no
response is sampled for data a supervised run reads one answer of. The miniature's labelled
data come from the world's ground truth instead (`oracle` with `labels: truth`)."""
from __future__ import annotations

from ..io import RecordError
from ..released import source_answers
from ..settings import PreferenceSetSettings
from .records import make_record

NAME = "labelled"


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    return [("clean", pref_cfg.generation)] if pref_cfg.generation else []


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources):
    fmt, path = resources["source"]
    answers = source_answers(fmt, path)
    samples = responses.get(("clean", pref_cfg.generation), {})
    records = []
    for p in prompts:
        if p["id"] not in answers:
            raise RecordError(path, p["id"], "id", "no answer for this prompt in its source")
        chosen = {"text": answers[p["id"]], "source": "labelled"}
        rejected = ({**samples[p["id"]]["responses"][0], "source": "clean", "sample": 0} if pref_cfg.generation
                    else dict(chosen))
        records.append(make_record(p, [[chosen], [rejected]], method=NAME, tied=not pref_cfg.generation))
    return records, {"prompts": len(prompts), "kept": len(records), "rejected": {}}
