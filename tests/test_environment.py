"""The locked environment: the venv is exactly the lock, and the lock covers pyproject.toml."""
import sys
from pathlib import Path

import pytest

from prefalign import environment

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "envs/requirements.lock"


def installed_lock() -> Path:
    """The lock `make venv` installed into this interpreter (its stamp names it), else the default."""
    stamps = sorted(Path(sys.prefix).glob(".installed-*.lock"))
    return ROOT / stamps[0].read_text().strip() if stamps else LOCK


def test_every_installed_distribution_is_locked_at_its_version():
    lock = installed_lock()
    pins, present = environment.read_lock(lock), environment.installed()
    unlocked = {name: version for name, version in present.items()
                if name not in environment.UNLOCKED and pins.get(name) != version}
    missing = sorted(set(pins) - set(present))
    assert not unlocked, f"installed but not in {lock.name} at that version: {unlocked}"
    assert not missing, f"in {lock.name} but not installed: {missing}"


def test_lock_covers_pyproject_and_a_missing_or_incompatible_pin_is_named(tmp_path):
    assert environment.check(LOCK) == []
    assert environment.locked_extras(LOCK) == ["test"]
    bench = ROOT / "envs/bench.lock"
    assert environment.locked_extras(bench) == ["test", "bench"] and environment.check(bench) == []
    pins, bench_pins = environment.read_lock(LOCK), environment.read_lock(bench)
    assert {k: v for k, v in bench_pins.items() if k in pins} == pins, "the bench lock moved a default pin"

    text = LOCK.read_text()
    without_peft = tmp_path / "no-peft.lock"
    without_peft.write_text(text.replace("\npeft==", "\n# peft=="))
    assert any(p.startswith("peft: in pyproject.toml but not in") for p in environment.check(without_peft))
    wrong_peft = tmp_path / "wrong-peft.lock"
    wrong_peft.write_text(text.replace("\npeft==0.21.2", "\npeft==0.20.0"))
    assert any(p.startswith("peft: ") and "pins 0.20.0" in p and "==0.21.2" in p
               for p in environment.check(wrong_peft))
    assert environment.main(["check", "--lock", str(without_peft)]) == 1


def test_conda_environment_is_generated_from_the_lock():
    pins = environment.read_lock(LOCK)
    assert (ROOT / "envs/prefalign.yaml").read_text() == environment.conda_environment(LOCK), \
        "envs/prefalign.yaml is stale: run `make lock`"
    assert pins["filelock"].startswith("4.2.")  # 4.3 removed filelock._api (envs/constraints.txt)


def test_a_pin_written_twice_is_an_error(tmp_path):
    lock = tmp_path / "twice.lock"
    lock.write_text("peft==0.21.2\nPEFT==0.21.2\n")
    with pytest.raises(environment.LockError, match="PEFT is pinned twice"):
        environment.read_lock(lock)
