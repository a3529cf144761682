"""File I/O shared by every stage: atomic writes and readers whose errors name file and record.

An interrupted job must never leave a half-written output that a later rule would read, so
every writer goes through `atomic_path`: write to a temporary sibling, then rename.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


class RecordError(ValueError):
    """A malformed input record; the message names file, record and field."""

    def __init__(self, path, record, field, problem):
        self.path, self.record, self.field = str(path), record, field
        super().__init__(f"{path}: record {record}: field '{field}': {problem}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success.

    Works for files and directories (e.g. a `save_pretrained` folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_jsonl(path, records: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            n += 1
    return n


def write_csv(path, rows: list[dict]) -> None:
    """Rows of one set of keys, the first row's key order as columns."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_json(path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RecordError(path, f"line {e.lineno}", "<json>", f"not valid JSON ({e.msg})") from None


def read_jsonl(path, finite: bool = True) -> list[dict]:
    """The records of a JSON-lines file; with `finite`, a NaN or infinity anywhere in one is
    a RecordError naming its field."""
    out = []
    try:
        f = open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(path, f"line {i}", "<json>", f"not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise RecordError(path, f"line {i}", "<json>", "expected an object")
            field = non_finite_field(rec) if finite else None
            if field is not None:  # JSON's NaN / Infinity: a score, weight or log-prob gone bad
                raise RecordError(path, f"line {i} (id {rec.get('id')})", field, "not a finite number")
            out.append(rec)
    return out


def non_finite_field(value, where: str = "") -> str | None:
    """The path (`groups[0][1].score`) of the first NaN or infinity in `value`, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        children = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{where}[{k}]", v) for k, v in enumerate(value)]
    else:
        children = []
    for child_where, child in children:
        found = non_finite_field(child, child_where)
        if found is not None:
            return found
    return None


def require(rec: dict, field: str, kind: type | tuple, path, record) -> Any:
    """Return rec[field] if present and of type `kind`, else raise a RecordError naming it."""
    if field not in rec:
        raise RecordError(path, record, field, "missing")
    value = rec[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(path, record, field, f"expected {names}, got {type(value).__name__}")
    return value
