"""Released preference datasets as they are (ConSR's Tables 5 and 10 train on them under its
own training setting): the chosen and rejected answer of every prompt of a POVID or RLAIF-V
file, under the prompt ids the sample_prompts stage gives those prompts; and the miniature's
stand-in for POVID, built from the world's SFT split the way POVID corrupts its answers.
"""
from __future__ import annotations

import functools
import random
import re
from collections import Counter

from .io import RecordError, read_json


def with_unique_ids(convs):
    """Records that share an id (a file may hold several records of one image under the
    image's id) become `<id>@<n>`, n counting that id's records in file order from 1, so every
    prompt keeps its own id downstream."""
    counts, seen = Counter(c.id for c in convs), Counter()
    out = []
    for c in convs:
        if counts[c.id] > 1:
            seen[c.id] += 1
            c = type(c)(f"{c.id}@{seen[c.id]}", c.image, c.turns)
        out.append(c)
    return out


def prompt_id(conv, k: int) -> str:
    """The id of turn k of a conversation: the record's id, `#k` where it has several turns."""
    return conv.id if len(conv.turns) == 1 else f"{conv.id}#{k}"


def povid_pairs(path) -> dict[str, tuple[str, str]]:
    """Prompt id -> (preferred, dispreferred) answer of each turn of POVID's release."""
    from .data import load_povid

    data = read_json(path)
    convs = with_unique_ids(load_povid(path, data))
    pairs = {}
    for rec, conv in zip(data, convs):
        rejected = [m["value"] for m in rec["rejected_conversations"] if m["from"] == "gpt"]
        for k, turn in enumerate(conv.turns):
            if k >= len(rejected):
                raise RecordError(path, conv.id, "rejected_conversations", f"no dispreferred answer for turn {k}")
            pairs[prompt_id(conv, k)] = (turn.answer, rejected[k])
    return pairs


def rlaif_v_pairs(path) -> dict[str, tuple[str, str]]:
    """Prompt id (`idx`) -> (chosen, rejected) of RLAIF-V's released parquet files."""
    import pyarrow.parquet as pq

    from .data import rlaif_v_files

    pairs = {}
    for f in rlaif_v_files(path):
        for i, row in enumerate(pq.read_table(f, columns=["idx", "chosen", "rejected"]).to_pylist()):
            for col in ("chosen", "rejected"):
                if not isinstance(row[col], str) or not row[col].strip():
                    raise RecordError(f, f"row {i}", col, "empty")
            pairs[str(row["idx"])] = (row["chosen"], row["rejected"])
    return pairs


PAIR_READERS = {"povid": povid_pairs, "rlaif_v": rlaif_v_pairs}
ANSWER_FORMATS = ("llava_json", *PAIR_READERS)


def source_answers(fmt: str, path) -> dict[str, str]:
    """Prompt id -> the source's own answer: a LLaVA file's gpt turn, a released pair's chosen."""
    if fmt in PAIR_READERS:
        return {pid: chosen for pid, (chosen, _) in PAIR_READERS[fmt](path).items()}
    if fmt != "llava_json":
        raise ValueError(f"prompt source format {fmt!r} holds no answers (formats that do: {list(ANSWER_FORMATS)})")
    from .data import load_conversations

    answers = {}
    for c in with_unique_ids(load_conversations(path, require_answers=True, text_only="skip")):
        answers[c.id] = c.turns[0].answer  # the id a record cut to one turn (questions_per_image: 1) has
        answers.update({prompt_id(c, k): t.answer for k, t in enumerate(c.turns)})
    return answers


def released_pairs(fmt: str, path) -> dict[str, tuple[str, str]]:
    """The pairs of a prompt source file whose format (`povid`, `rlaif_v`) releases them."""
    if fmt not in PAIR_READERS:
        raise ValueError(f"prompt source format {fmt!r} releases no preference pairs "
                         f"(formats that do: {sorted(PAIR_READERS)})")
    return PAIR_READERS[fmt](path)


# POVID keeps the SFT answer as preferred and has GPT-4V inject hallucinations into it
# (objects, attributes, counts, relations) for the dispreferred one. The miniature's stand-in
# does the same with the world's vocabulary, from the answer's text alone.
@functools.cache
def _vocabulary():
    from . import world as W

    # longest first, so that "top left" is one position and not "top" and "left"; ties by name,
    # not in a set's order, which differs between processes (string hashing)
    positions = sorted({p for row in W.POSITIONS_3x3 for p in row}, key=lambda p: (-len(p), p))
    return {"colour": sorted(W.COLOURS), "shape": list(W.SHAPES), "number": list(W.NUMBERS), "position": positions}


def hallucinate(answer: str, rng: random.Random) -> str | None:
    """The answer with one injected error (yes/no flipped; else one colour, shape, count,
    position or sign number swapped for another, or, in a description, an object added), or
    None where the answer names nothing to change."""
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    vocab = _vocabulary()
    spans = [(m.start(), m.end(), kind, m.group(0)) for kind, words in vocab.items()
             for m in re.finditer(r"\b(" + "|".join(words) + r")\b", answer)]
    spans += [(m.start(), m.end(), "sign", m.group(0)) for m in re.finditer(r"\b\d{2}\b", answer)]
    if answer.startswith("there is") and (not spans or rng.random() < 0.5):
        obj = f"{rng.choice(['small', 'large'])} {rng.choice(vocab['colour'])} {rng.choice(vocab['shape'])}"
        return f"{answer} there is a {obj} at the {rng.choice(vocab['position'])}."
    if not spans:
        return None
    start, end, kind, word = rng.choice(sorted(spans))
    other = str(rng.choice([n for n in range(10, 100) if str(n) != word])) if kind == "sign" else \
        rng.choice([w for w in vocab[kind] if w != word])
    return answer[:start] + other + answer[end:]


def povid_like(sft: list[dict], n_images: int, seed: int) -> tuple[list[dict], dict]:
    """POVID's release format from `n_images` records of a LLaVA SFT file: every answer
    preferred, its hallucinated copy dispreferred; turns with nothing to change are left out
    (counted)."""
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(sft)), n_images))
    out, dropped = [], 0
    for i in picked:
        rec, chosen, rejected = sft[i], [], []
        conv = rec["conversations"]
        for k in range(0, len(conv) - 1, 2):
            bad = hallucinate(conv[k + 1]["value"], rng)
            if bad is None:
                dropped += 1
                continue
            question = conv[k]["value"].replace("<image>\n", "")
            human = {"from": "human", "value": ("<image>\n" if not chosen else "") + question}
            chosen += [human, conv[k + 1]]
            rejected += [human, {"from": "gpt", "value": bad}]
        if chosen:
            out.append({"id": rec["id"], "image": rec["image"], "conversations": chosen,
                        "rejected_conversations": rejected})
    return out, {"images": len(out), "pairs": sum(len(r["conversations"]) // 2 for r in out),
                 "turns_left_out": dropped}
