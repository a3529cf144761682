"""One torchrun process of the train stage: `python -m prefalign.stages.train_worker KWARGS.json`
(`distributed.launch` starts them; the file holds `train`'s keyword arguments, its settings as
plain values)."""
import json
import logging
import sys

from ..settings import ObjectiveSettings, TrainingSettings
from .train import train

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with open(sys.argv[1]) as fh:
        kwargs = json.load(fh)
    train(**{**kwargs, "objective": ObjectiveSettings.of(kwargs["objective"]),
             "training": TrainingSettings.of(kwargs["training"])})
