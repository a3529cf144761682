import pytest

from prefalign.tracking import offline_history, step_logger


def test_wandb_offline_run_holds_every_step_and_the_config(tmp_path):
    rows = [{"step": 0, "loss": 0.69, "rewards/margins": 0.0}, {"step": 1, "loss": 0.5, "rewards/margins": 0.25}]
    with step_logger("wandb", tmp_path, "oracle.seed1", {"training": {"lr": 5e-4}, "seed": 1}) as on_step:
        for row in rows:
            on_step(row)
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    config, history = offline_history(run)
    assert config["training"] == {"lr": 5e-4} and config["seed"] == 1
    assert [{k: h[k] for k in ("_step", "loss", "rewards/margins")} for h in history] == [
        {"_step": r["step"], "loss": r["loss"], "rewards/margins": r["rewards/margins"]} for r in rows]


def test_report_to_none_writes_nothing_and_an_unknown_tracker_is_named(tmp_path):
    with step_logger("none", tmp_path, "x", {}) as on_step:
        on_step({"step": 0, "loss": 1.0})
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="tensorboard"):
        with step_logger("tensorboard", tmp_path, "x", {}):
            pass
