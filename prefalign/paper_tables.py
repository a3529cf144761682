"""The papers' tables and figures a config reproduces (`paper_tables:`), each a Snakemake
target `<results>/tables/<name>.md` (rule paper_table).

`python -m prefalign.paper_tables CONFIG` lists them (`make tables-list`): target, paper,
rows."""
from __future__ import annotations

import re
import sys

# A paper table's name; the config schema's `paper_tables` propertyNames holds the same pattern.
NAME = re.compile(r"((seva|smpro|consr|aspo)_(table|figure)[0-9]+|study_[a-z0-9_]+)")
PAPERS = {"seva": "SeVa", "smpro": "SMPRO", "consr": "ConSR", "aspo": "ASPO", "study": "prefalign"}


def paper_of(name: str) -> str:
    """The paper a table belongs to, by its name's prefix ("study" for this project's own)."""
    return PAPERS[name.split("_", 1)[0]]


def heading(name: str, title: str) -> str:
    """`smpro_table2` -> "SMPRO Table 2: <title>"; a study's title as it is."""
    paper, _, which = name.partition("_")
    if paper == "study":
        return title
    kind = "Figure" if which.startswith("figure") else "Table"
    return f"{PAPERS[paper]} {kind} {which.removeprefix(kind.lower())}: {title}"


def listing(config: dict) -> str:
    """One line per table: its target, paper and runs, then its title."""
    results = config["results"]
    lines = []
    for name, table in config["paper_tables"].items():
        lines += [f"{results}/tables/{name}.md  [{paper_of(name)}]  runs: {', '.join(table['runs'])}",
                  f"    {table['title']}"]
    return "\n".join(lines) if lines else (f"no paper_tables in this config (results: {results}); the miniature's "
                                            "are in configs/miniature_ablations.yaml (make tables-list "
                                            "CONFIG=configs/miniature_ablations.yaml)")


if __name__ == "__main__":
    from .config import ConfigError, load_config_unresolved

    try:
        print(listing(load_config_unresolved(sys.argv[1])))
    except ConfigError as e:
        sys.exit(str(e))
