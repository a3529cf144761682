"""Loaders for LLaVA-format conversation JSON (the miniature world and LLaVA-665k alike)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .io import RecordError, read_json, require


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    image: str  # path relative to the image root
    turns: tuple[Turn, ...]


def load_conversations(path, require_answers: bool) -> list[Conversation]:
    """Parse a LLaVA conversation file; a malformed record raises naming file, record, field."""
    data = read_json(path)
    if not isinstance(data, list):
        raise RecordError(path, "<top>", "<json>", "expected a list of records")
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise RecordError(path, i, "<record>", "expected an object")
        rid = str(require(rec, "id", (str, int), path, i))
        where = f"{i} (id {rid})"
        image = require(rec, "image", str, path, where)
        conv = require(rec, "conversations", list, path, where)
        turns, k = [], 0
        while k < len(conv):
            msg = conv[k]
            field = f"conversations[{k}]"
            if not isinstance(msg, dict) or msg.get("from") != "human" or not isinstance(msg.get("value"), str):
                raise RecordError(path, where, field, "expected a human turn {'from': 'human', 'value': str}")
            q = msg["value"].replace("<image>\n", "").replace("\n<image>", "").replace("<image>", "").strip()
            a = None
            if k + 1 < len(conv) and isinstance(conv[k + 1], dict) and conv[k + 1].get("from") == "gpt":
                a = conv[k + 1].get("value")
                if not isinstance(a, str):
                    raise RecordError(path, where, f"conversations[{k + 1}].value", "expected a string")
                k += 1
            elif require_answers:
                raise RecordError(path, where, f"conversations[{k + 1}]", "missing the gpt answer")
            turns.append(Turn(q, a))
            k += 1
        if not turns:
            raise RecordError(path, where, "conversations", "no turns")
        out.append(Conversation(rid, image, tuple(turns)))
    return out


def open_image(root, rel: str, source, record) -> Image.Image:
    """Open an RGB image; a missing or unreadable file names the record that points to it."""
    p = Path(root) / rel
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise RecordError(source, record, "image", f"image file not found: {p}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise RecordError(source, record, "image", f"unreadable image {p}: {e}") from None
