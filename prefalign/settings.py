"""Typed, frozen settings: what the train stage and the generating stages receive.

The config schema (`schemas/config.schema.yaml`) stays the one home of every default and its
help, and validates; these classes name each field with its type, so code reads
`training.lr`, and a key the schema gains but a class lacks (or the reverse) fails
`tests/test_config_and_io.py`. `of` builds one from a validated config entry, whose defaults
`validate_config` has filled in; `from_partial` fills them itself (tests, scripts that build
an entry). Fields that default to None are optional keys whose absence means "off" or "not
this kind's"."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from .config import ConfigError, with_defaults


class Settings:
    KIND: ClassVar[str]  # the schema's section, for with_defaults and messages
    RENAMED: ClassVar[dict] = {}  # config key -> field, where the key is a Python keyword

    @classmethod
    def of(cls, entry: dict):
        """From a validated entry whose defaults are filled in."""
        entry = {cls.RENAMED.get(k, k): v for k, v in entry.items()}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(entry) - fields)
        if unknown:
            raise ConfigError(f"config key '{cls.KIND}.<entry>.{unknown[0]}': not a field of {cls.__name__} "
                              f"(fields: {sorted(fields)})")
        try:
            return cls(**cls.nested(entry))
        except TypeError as e:  # a required field missing
            raise ConfigError(f"config key '{cls.KIND}.<entry>': {e}") from None

    @classmethod
    def from_partial(cls, entry: dict):
        """From an entry that may omit keys the schema has defaults for."""
        return cls.of(with_defaults(cls.KIND, entry))

    @classmethod
    def nested(cls, entry: dict) -> dict:
        return entry

    def as_dict(self) -> dict:
        """Plain values under the config's keys (JSON-ready): for checkpoint keys and the
        torchrun workers."""
        config_key = {v: k for k, v in self.RENAMED.items()}
        return {config_key.get(k, k): v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class LoraSettings(Settings):
    KIND: ClassVar[str] = "training.lora"
    r: int
    alpha: float
    dropout: float
    target_modules: str | list[str] | None = None  # None: every linear layer of the language model


@dataclass(frozen=True)
class TrainingSettings(Settings):
    KIND: ClassVar[str] = "training"
    lora: LoraSettings
    lr: float
    warmup_ratio: float
    epochs: int
    repeat: int
    batch_size: int
    processes: int
    fsdp: bool
    weight_decay: float
    max_grad_norm: float | None
    checkpoint_every: int
    chosen_nll_weight: float
    report_to: str
    micro_batch_size: int | None = None  # None: the whole batch in one pass

    @classmethod
    def nested(cls, entry: dict) -> dict:
        lora = entry.get("lora")
        return {**entry, "lora": LoraSettings.of(lora)} if isinstance(lora, dict) else entry


@dataclass(frozen=True)
class ObjectiveSettings(Settings):
    """A loss and its parameters; which ones a loss needs, the schema says per `loss`."""
    KIND: ClassVar[str] = "objectives"
    loss: str
    beta: float | None = None
    steepness: float | None = None
    swap: str | None = None
    alpha: float | None = None
    clip: tuple[float, float] | None = None
    token_shift: str | None = None
    positive_sign: int | None = None

    @classmethod
    def nested(cls, entry: dict) -> dict:
        return {**entry, "clip": tuple(entry["clip"])} if entry.get("clip") is not None else entry


@dataclass(frozen=True)
class GenerationSettings(Settings):
    KIND: ClassVar[str] = "generation"
    do_sample: bool
    temperature: float
    top_p: float
    max_new_tokens: int
    num_return_sequences: int
    batch_size: int
    shards: int


@dataclass(frozen=True)
class PreferenceSetSettings(Settings):
    """A preference set: its method, prompts and generation, and what its method reads (the
    schema says which keys each method requires). ConSR's `lambda` is `lambda_` here."""
    KIND: ClassVar[str] = "preference_sets"
    RENAMED: ClassVar[dict] = {"lambda": "lambda_"}
    method: str
    prompts: str
    generation: str | None = None  # None: a released set, which samples nothing
    labels: str | None = None
    clip: str | None = None
    consr_prompts: str | None = None
    candidates: dict | None = None  # ConSR: {sampled, revised, noisy} candidates per prompt
    noisy_augmentation: str | None = None
    corrupt_augmentation: str | None = None
    lambda_: float | None = None
    selection: str | None = None
    level: str | None = None
    augmentation: str | None = None
    groups: list | None = None  # SMPRO: [{views, per_view}, ...], best group first


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    KIND: ClassVar[str] = "evaluation"
    model: str
    tasks: list
    limit: int | None
    batch_size: int
    model_args: dict
    split_tasks: bool
    judge_tasks: list | None = None


@dataclass(frozen=True)
class SftSettings(Settings):
    """The miniature base model's supervised training."""
    KIND: ClassVar[str] = "base_model.sft"
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_frac: float
    clip: float
    seed: int
    checkpoint_every: int


@dataclass(frozen=True)
class BaseModelSettings(Settings):
    """The base VLM: the miniature's tiny LLaVA (its architecture and SFT) or a pretrained one."""
    KIND: ClassVar[str] = "base_model"
    kind: str
    path: str | None = None
    tiny: dict | None = None  # patch_size, and the vision and text configs
    sft: SftSettings | None = None
    competence_noise_steps: list | None = None

    @classmethod
    def nested(cls, entry: dict) -> dict:
        sft = entry.get("sft")
        return {**entry, "sft": SftSettings.of(sft)} if isinstance(sft, dict) else entry


@dataclass(frozen=True)
class ClipSettings(Settings):
    """An image-text scorer: a CLIP trained on the world (`train_world`) or an open_clip model."""
    KIND: ClassVar[str] = "clip_models"
    kind: str
    model: str | None = None
    pretrained: str | None = None
    seed: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    architecture: dict | None = None


@dataclass(frozen=True)
class WorldSettings(Settings):
    """The miniature's synthetic world."""
    KIND: ClassVar[str] = "world"
    seed: int
    reasoning_share: float
    image_size: int
    grid: int
    n_sft_images: int
    n_pool_images: int
    n_eval: dict  # pope, vqa, describe
    consr_share: float
    cooccurrence: float
    annotator_prior: float
    colour_prior: float
    pool_family_weights: dict


@dataclass(frozen=True)
class PromptSetSettings(Settings):
    KIND: ClassVar[str] = "prompt_sets"
    source: dict  # format, path, image_root and the format's selection keys
    n: int
    reasoning_prompt: str | None = None


@dataclass(frozen=True)
class TablesSettings(Settings):
    KIND: ClassVar[str] = "tables"
    bootstrap_samples: int
    confidence: float
    mattr_window: int
    diversity: list
    reported: dict | None = None


@dataclass(frozen=True)
class ConsrPromptsSettings(Settings):
    """ConSR's prompts: the description, the revision and the description-context templates."""
    KIND: ClassVar[str] = "consr_prompts"
    description_prompt: str
    revision_template: str
    context_template: str
    description_generation: str
    revision_generation: str
    description_model: str | None = None  # None: the base model describes


@dataclass(frozen=True)
class RunSettings(Settings):
    """A run: a preference set trained under an objective and training setting. `label` and
    `seeds` are always filled in by validation (the run's name, the top-level seeds)."""
    KIND: ClassVar[str] = "runs"
    preferences: str
    objective: str
    training: str
    main_table: bool
    label: str | None = None
    seeds: list | None = None


@dataclass(frozen=True)
class PaperTableSettings(Settings):
    KIND: ClassVar[str] = "paper_tables"
    title: str
    runs: list
    columns: list | None = None  # None: every column
    reported: dict | None = None  # None: the config's tables.reported
