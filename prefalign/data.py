"""Prompt sources from local files: LLaVA conversation JSON (the miniature world, LLaVA-665k,
LLaVA-Instruct-150K), POVID's released preference JSON and RLAIF-V's released parquet files;
the workflow's own prompt and description files."""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import manifest
from .io import RecordError, read_json, read_jsonl, require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    image: str  # path relative to the image root
    turns: tuple[Turn, ...]


def load_conversations(path, require_answers: bool, text_only: str = "error") -> list[Conversation]:
    """Parse a LLaVA conversation file; a malformed record raises naming file, record, field.
    `text_only="skip"` leaves out records without an image (LLaVA-665k's ShareGPT part), counted
    in the log; otherwise such a record is an error."""
    check_world_file(path)
    data = read_json(path)
    if text_only == "skip" and isinstance(data, list):
        kept = [r for r in data if not (isinstance(r, dict) and "image" not in r)]
        if len(kept) < len(data):
            log.info("%s: %d of %d records have no image (text only) and are left out", path, len(data) - len(kept),
                     len(data))
        data = kept
    return parse_conversations(data, path, require_answers)


def parse_conversations(data, path, require_answers: bool) -> list[Conversation]:
    """The records of a parsed LLaVA conversation file (`path` names it in errors)."""
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


def load_povid(path, data: list | None = None) -> list[Conversation]:
    """POVID's release (YiyangAiLab/POVID_preference_data_for_VLLMs, the JSON its
    train_dpo_inherent.py reads): LLaVA records from LLaVA-Instruct-150K whose `conversations`
    end in the preferred answer, with `rejected_conversations` asking the same questions.
    The prompts are the questions; a record whose two conversations disagree stops. `data`:
    the file already parsed (read here otherwise)."""
    data = read_json(path) if data is None else data
    convs = parse_conversations(data, path, require_answers=True)
    for i, (rec, conv) in enumerate(zip(data, convs)):
        where = f"{i} (id {conv.id})"
        chosen = rec["conversations"]
        rejected = require(rec, "rejected_conversations", list, path, where)
        if len(rejected) != len(chosen):
            raise RecordError(path, where, "rejected_conversations",
                              f"{len(rejected)} turns where conversations has {len(chosen)}")
        for k, (c, r) in enumerate(zip(chosen, rejected)):
            if not isinstance(r, dict) or r.get("from") != c["from"] or not isinstance(r.get("value"), str):
                raise RecordError(path, where, f"rejected_conversations[{k}]",
                                  f"expected {{'from': '{c['from']}', 'value': str}}")
            if c["from"] == "human" and r["value"] != c["value"]:
                raise RecordError(path, where, f"rejected_conversations[{k}].value",
                                  "asks a different question than conversations")
    return convs


# Records name the miniature world's images "{world}/images/...": the world folder of the
# results folder they are read in (`world_dir`), so a results folder can be moved or copied.
# Images of a real dataset keep the path the prompt source gives them.
WORLD = "{world}"
_world_dir: Path | None = None


def world_dir(results) -> Path:
    """Where a results folder holds the miniature world."""
    return Path(results) / "world"


def set_world_dir(path) -> None:
    """The world folder that "{world}" in a record's image path means in this process
    (`stages.job.setup` sets it from the config's results folder)."""
    global _world_dir
    _world_dir = Path(path)


@contextlib.contextmanager
def world_folder(path):
    """`set_world_dir` inside the block, the previous world folder after it (code that runs
    stages on several results folders in one process: tests)."""
    global _world_dir
    previous, _world_dir = _world_dir, Path(path)
    try:
        yield
    finally:
        _world_dir = previous


def image_file(name: str, source, record) -> Path:
    """The file a record's image path names."""
    if WORLD not in name:
        return Path(name)
    if _world_dir is None:
        raise RecordError(source, record, "image", f"{name} is in the world folder, which is not set in this process "
                          "(prefalign.data.set_world_dir)")
    return Path(name.replace(WORLD, str(_world_dir)))


def check_world_file(path, data: bytes | None = None) -> None:
    """A file of this process's world must have the digest the world's manifest gives it
    (`manifest.DigestError` otherwise); files elsewhere are not checked here."""
    if _world_dir is not None and manifest.inside(_world_dir, path):
        manifest.check(_world_dir, path, data)


def open_image(root, rel: str, source, record, sha256: str | None = None) -> Image.Image:
    """Open an RGB image; a missing, unreadable or changed file (in the world, against its
    manifest; elsewhere, against `sha256` where given) names the record that points to it."""
    p = Path(root) / image_file(rel, source, record)
    try:
        data = p.read_bytes()
        check_world_file(p, data)
        if sha256 is not None and manifest.sha256(data) != sha256:
            raise manifest.DigestError(f"{p}: sha256 differs from the image_sha256 its prompt set recorded: "
                                       "changed since the prompts were sampled")
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except manifest.DigestError as e:
        raise RecordError(source, record, "image", str(e)) from None
    except FileNotFoundError:
        raise RecordError(source, record, "image", f"image file not found: {p}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise RecordError(source, record, "image", f"unreadable image {p}: {e}") from None


# RLAIF-V's released files (openbmb/RLAIF-V-Dataset, RLAIF-V-Dataset_000.parquet, ...).
RLAIF_V_COLUMNS = ("question", "idx", "image_path")


def rlaif_v_files(path) -> list[Path]:
    """A parquet file, or every *.parquet in a folder, in name order."""
    p = Path(path)
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files or not files[0].exists():
        raise RecordError(path, "<files>", "path", "no RLAIF-V parquet file found")
    return files


def load_rlaif_v(path) -> list[Conversation]:
    """RLAIF-V's instructions as one-turn prompts (id = `idx`, image = `image_path`).

    Only the text columns are read here; `extract_rlaif_v_images` writes the images of the
    prompts actually sampled. A missing column or an empty field names file, row and field."""
    import pyarrow.parquet as pq

    out, seen = [], {}
    for f in rlaif_v_files(path):
        names = pq.read_schema(f).names
        for col in (*RLAIF_V_COLUMNS, "image"):
            if col not in names:
                raise RecordError(f, "<schema>", col, f"missing column (columns: {names})")
        table = pq.read_table(f, columns=list(RLAIF_V_COLUMNS)).to_pylist()
        for i, row in enumerate(table):
            for col in RLAIF_V_COLUMNS:
                if row[col] is None or (isinstance(row[col], str) and not row[col].strip()):
                    raise RecordError(f, f"row {i}", col, "empty")
            rid = str(row["idx"])
            if rid in seen:
                raise RecordError(f, f"row {i}", "idx", f"duplicate id {rid} (first in {seen[rid]})")
            seen[rid] = f"{f.name} row {i}"
            out.append(Conversation(rid, str(row["image_path"]), (Turn(row["question"].strip(), None),)))
    return out


def extract_rlaif_v_images(path, ids: set[str], image_root) -> None:
    """Write the released image bytes of the given ids to image_root/<image_path>, once."""
    import pyarrow.parquet as pq

    from .io import atomic_path

    wanted = set(ids)
    for f in rlaif_v_files(path):
        rows = pq.read_table(f, columns=["idx", "image_path", "image"]).to_pylist()
        for i, row in enumerate(rows):
            if str(row["idx"]) not in wanted:
                continue
            dest = Path(image_root) / str(row["image_path"])
            if dest.exists():
                continue
            image = row["image"] or {}
            data = image.get("bytes") if isinstance(image, dict) else None
            if not data:
                raise RecordError(f, f"row {i}", "image.bytes", "no image bytes")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                tmp.write_bytes(data)


def open_record_image(rec: dict, source) -> Image.Image:
    """The image a workflow record (prompt, response or preference) names, checked against the
    digest its prompt set recorded (`image_sha256`: images outside the world, which has its
    own manifest)."""
    return open_image("", rec["image"], source, rec["id"], rec.get("image_sha256"))


def read_prompts(path) -> list[dict]:
    """A prompt file of the sample_prompts stage: id, image and question of every record."""
    recs = read_jsonl(path)
    for i, r in enumerate(recs, 1):
        for f in ("id", "image", "question"):
            require(r, f, str, path, f"line {i}")
    return recs


def read_descriptions(path) -> dict[str, str]:
    """A description file of the describe_images stage: prompt id -> the image's description."""
    out = {}
    for i, r in enumerate(read_jsonl(path), 1):
        out[require(r, "id", str, path, f"line {i}")] = require(r, "description", str, path, f"line {i}")
    return out
