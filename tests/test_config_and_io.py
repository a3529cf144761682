import copy
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefalign.config import ConfigError, _schema, load_config, validate_config
from prefalign.data import load_conversations, open_image
from prefalign.io import RecordError, atomic_path, read_jsonl, write_jsonl
from prefalign.settings import (BaseModelSettings, ClipSettings, ConsrPromptsSettings,
                                EvaluationSettings, GenerationSettings, LoraSettings, ObjectiveSettings,
                                PaperTableSettings, PreferenceSetSettings, PromptSetSettings, RunSettings, SftSettings,
                                TablesSettings,
                                TrainingSettings, WorldSettings)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg():
    """The default with the papers' ablations (every kind of preference set and objective)."""
    from prefalign.config import with_extends

    return with_extends(yaml.safe_load((ROOT / "configs/miniature_ablations.yaml").read_text()))


def test_shipped_configs_validate():
    load_config(ROOT / "config.yaml")
    load_config(ROOT / "configs" / "miniature_ablations.yaml")
    load_config(ROOT / "tests" / "configs" / "micro.yaml")


def test_extends_merges_mappings_and_names_a_missing_base(tmp_path):
    from prefalign.config import ConfigError, with_extends

    (tmp_path / "base.yaml").write_text("a: {x: 1, y: {p: 1}}\nb: [1, 2]\nc: 3\n")
    child = {"extends": "base.yaml", "a": {"y": {q: 2 for q in ["q"]}}, "b": [3]}
    assert with_extends(child, tmp_path) == {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [3], "c": 3}
    with pytest.raises(ConfigError, match="config key 'extends': cannot read .*nope.yaml"):
        with_extends({"extends": "nope.yaml"}, tmp_path)


def prompt_set(source: dict, n: int) -> dict:
    return PromptSetSettings.from_partial({"source": source, "n": n})


def test_the_default_consr_prompts_are_the_ones_the_world_teaches(cfg):
    from prefalign import world as W

    prompts = cfg["consr_prompts"]["world"]
    assert prompts["description_prompt"] == W.DESCRIBE_QUESTION
    assert prompts["revision_template"] == W.REVISION_TEMPLATE
    assert prompts["context_template"] == W.CONTEXT_TEMPLATE


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c.update(typo=1), "typo"),
    (lambda c: c["world"].update(grid="three"), "world.grid"),
    (lambda c: c["training"]["miniature"]["lora"].update(r=0), "training.miniature.lora.r"),
    (lambda c: c["augmentations"]["noise500"].update(step=1000), "augmentations.noise500.step"),
    (lambda c: c["augmentations"]["noise500"].pop("step"), "augmentations.noise500.step"),
    (lambda c: c["runs"]["seva"].update(objective="nope"), "runs.seva.objective"),
    (lambda c: c["preference_sets"]["seva"].update(augmentation="nope"), "preference_sets.seva.augmentation"),
    (lambda c: c["preference_sets"]["smpro"].pop("groups"), "preference_sets.smpro.groups"),
    (lambda c: c["preference_sets"]["smpro"]["groups"][1].update(per_view=4),
     "preference_sets.smpro.groups.1.per_view"),
    (lambda c: c["preference_sets"]["smpro"]["groups"][2].update(views=["noise900"]),
     "preference_sets.smpro.groups.2.views"),
    (lambda c: c["objectives"]["mgp"].pop("steepness"), "objectives.mgp.steepness"),
    (lambda c: c["objectives"]["mgp"].update(swap="gumbel"), "objectives.mgp.swap"),
    (lambda c: c["objectives"]["consr"].update(token_shift="both"), "objectives.consr.token_shift"),
    (lambda c: c["preference_sets"]["oracle"].pop("labels"), "preference_sets.oracle.labels"),
    (lambda c: c["prompt_sets"]["consr"]["source"].update(path="/data/pool.json"), "preference_sets.oracle.prompts"),
    (lambda c: c["paper_tables"]["smpro_table2"]["runs"].append("nope"), "paper_tables.smpro_table2.runs"),
    (lambda c: c["paper_tables"].update(ablation_x={"title": "t", "runs": ["seva"]}), "ablation_x"),
    (lambda c: c["tables"]["diversity"][0].update(prompts="nope"), "tables.diversity.0.prompts"),
    (lambda c: c["runs"]["seva"].update(objective="aspo"), "runs.seva.preferences"),
    (lambda c: c["runs"]["seva"].update(objective="consr"), "runs.seva.preferences"),
    (lambda c: c["preference_sets"]["consr"].update(consr_prompts="nope"), "preference_sets.consr.consr_prompts"),
    (lambda c: c["preference_sets"]["consr"]["candidates"].update(revised=6),
     "preference_sets.consr.candidates.revised"),
    (lambda c: c["preference_sets"]["consr"].update(corrupt_augmentation="noise900"),
     "preference_sets.consr.corrupt_augmentation"),
    (lambda c: c["preference_sets"]["consr"].pop("noisy_augmentation"), "preference_sets.consr.noisy_augmentation"),
    (lambda c: c["preference_sets"]["consr"].update(**{"lambda": 1.5}), "preference_sets.consr.lambda"),
    (lambda c: c["preference_sets"]["consr_sampled"].update(selection="noise_pair"),
     "preference_sets.consr_sampled.selection"),
    (lambda c: c["consr_prompts"]["world"].update(context_template="{description} only"),
     "consr_prompts.world.context_template"),
    (lambda c: c["objectives"]["consr"].pop("clip"), "objectives.consr.clip"),
    (lambda c: c["augmentations"].update(revised={"kind": "random_flip"}), "augmentations.revised"),
    (lambda c: c["preference_sets"]["aspo"].update(clip="nope"), "preference_sets.aspo.clip"),
    (lambda c: c["preference_sets"]["aspo"].update(level="paragraph"), "preference_sets.aspo.level"),
    (lambda c: c["runs"]["aspo_token"].update(seeds=[7]), "runs.aspo_token.seeds"),
    (lambda c: c["clip_models"]["world"].pop("architecture"), "clip_models.world.architecture"),
    (lambda c: c["preference_sets"]["povid"].update(prompts="consr"), "preference_sets.povid.prompts"),
    (lambda c: c["preference_sets"]["povid"].update(generation="greedy"), "preference_sets.povid"),
    (lambda c: c["preference_sets"]["seva"].pop("generation"), "preference_sets.seva.generation"),
    (lambda c: c["released_data"]["povid"].update(recipe="rlhf_v"), "released_data.povid.recipe"),
    (lambda c: c["preference_sets"].update(lab={"method": "labelled", "prompts": "seva"}),
     "preference_sets.lab.prompts"),
    (lambda c: (c["preference_sets"].update(lab={"method": "labelled", "prompts": "povid"}),
                c["runs"].update(lab={"preferences": "lab", "objective": "dpo", "training": "miniature"})),
     "runs.lab.objective"),
])
def test_schema_errors_name_the_key(cfg, mutate, key):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(ConfigError) as e:
        validate_config(bad)
    assert f"'{key}'" in str(e.value)


def vision_from(c, name="world", **tiny):
    c["base_model"]["tiny"].pop("vision", None)
    c["base_model"]["tiny"].update(vision_from=name, **tiny)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: vision_from(c, vision={"hidden_size": 8}), "base_model.tiny"),
    (lambda c: c["base_model"]["tiny"].pop("vision", None) or c["base_model"]["tiny"].pop("vision_from", None),
     "base_model.tiny"),
    (lambda c: vision_from(c, "nope"), "base_model.tiny.vision_from"),
    (lambda c: vision_from(c, patch_size=5), "clip_models.world.architecture.vision"),
    (lambda c: (vision_from(c), c["clip_models"]["world"]["architecture"]["vision"].update(ls_init_value=0.1)),
     "clip_models.world.architecture.vision"),
])
def test_vision_from_errors_name_the_key(cfg, mutate, key):
    test_schema_errors_name_the_key(cfg, mutate, key)


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_name_the_key(cfg, text):
    bad = copy.deepcopy(cfg)
    bad["runs"]["seva"]["seeds"] = [1, yaml.safe_load(text)]
    with pytest.raises(ConfigError, match=r"config key 'runs.seva.seeds\[1\]': not a finite number"):
        validate_config(bad)


def test_a_nan_in_the_config_file_stops_snakemake_n(tmp_path):
    """`lr: .nan` is a float to YAML and to the schema's `type: number`."""
    text = (ROOT / "tests/configs/micro.yaml").read_text()
    config = tmp_path / "nan.yaml"
    config.write_text(text.replace("\n    lr: 0.0005\n", "\n    lr: .nan\n"))  # training.miniature.lr
    assert yaml.safe_load(config.read_text()) != yaml.safe_load(text)
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config),
                          "--config", f"results={tmp_path / 'results'}"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert re.search(r"config key 'training\.miniature\.lr': not a finite number", out.stdout + out.stderr)


def test_a_yaml_error_names_file_line_and_column(tmp_path):
    """Snakemake's own message for a broken --configfile names no line; `make reproduce`
    checks the file first."""
    from prefalign.config import read_yaml

    bad = tmp_path / "bad.yaml"
    bad.write_text("results: /tmp/x\nruns:\n  a: {preferences: dpo\n  b: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4:4: not valid YAML"):
        read_yaml(bad)
    make = subprocess.run(["make", "-s", "reproduce", f"CONFIG={bad}"], cwd=ROOT, capture_output=True, text=True)
    assert make.returncode != 0 and re.search(r"bad.yaml:4:4: not valid YAML", make.stderr), make.stderr[-2000:]
    assert "Building DAG" not in make.stdout + make.stderr  # stopped before Snakemake


def test_a_duplicate_key_is_a_yaml_error_not_a_silent_override(tmp_path):
    """YAML would keep the second `ablations:` of a file and drop the first without a word
    (configs/miniature_ablations.yaml held two)."""
    from prefalign.config import read_yaml

    bad = tmp_path / "dup.yaml"
    bad.write_text("results: /tmp/x\nablations:\n  a: {runs: [x]}\nseeds: [1]\nablations:\n  b: {runs: [y]}\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:5:1: not valid YAML: duplicate key 'ablations'"):
        read_yaml(bad)
    nested = tmp_path / "nested.yaml"
    nested.write_text("runs:\n  a: {preferences: p, preferences: q}\n")
    with pytest.raises(ConfigError, match=r"nested.yaml:2:\d+: not valid YAML: duplicate key 'preferences'"):
        read_yaml(nested)
    for config in sorted(ROOT.glob("configs/*.yaml")) + [ROOT / "config.yaml"]:
        read_yaml(config)  # the shipped configs have none


def test_snakemake_validate_uses_the_same_schema(cfg):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    bad = copy.deepcopy(cfg)
    bad["world"]["grid"] = "three"
    with pytest.raises(WorkflowError, match="grid"):
        validate(bad, str(ROOT / "prefalign" / "schemas" / "config.schema.yaml"))


SETTINGS = [LoraSettings, TrainingSettings, ObjectiveSettings, GenerationSettings, PreferenceSetSettings,
            EvaluationSettings, SftSettings, BaseModelSettings, ClipSettings, WorldSettings, PromptSetSettings,
            TablesSettings, ConsrPromptsSettings, RunSettings, PaperTableSettings]


def schema_entry(kind: str) -> dict:
    schema = _schema()
    for part in kind.split("."):
        schema = schema["properties"][part]
        schema = schema if "properties" in schema else schema["additionalProperties"]
    return schema


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_settings_classes_have_exactly_the_schema_keys(cls):
    """Each typed settings class names every key of its schema entry and no other; a field may
    be left out of an entry (default None) exactly where the schema neither requires it nor
    gives it a default, so the schema stays the one home of every default."""
    entry, fields = schema_entry(cls.KIND), dataclasses.fields(cls)
    key = {v: k for k, v in cls.RENAMED.items()}
    assert {key.get(f.name, f.name) for f in fields} == set(entry["properties"])
    filled = set(entry["required"]) | {k for k, v in entry["properties"].items() if "default" in v}
    assert {key.get(f.name, f.name) for f in fields if f.default is None} == set(entry["properties"]) - filled


def test_settings_from_the_config_round_trip_and_name_unknown_keys(cfg):
    cfg = validate_config(copy.deepcopy(cfg))
    training = TrainingSettings.of(cfg["training"]["miniature"])
    assert isinstance(training.lora, LoraSettings) and training.lr == cfg["training"]["miniature"]["lr"]
    assert TrainingSettings.of(training.as_dict()) == training  # as the torchrun workers receive it
    for entry in cfg["objectives"].values():
        assert ObjectiveSettings.of(json.loads(json.dumps(ObjectiveSettings.of(entry).as_dict()))) == \
            ObjectiveSettings.of(entry)
    assert GenerationSettings.from_partial({"do_sample": False, "max_new_tokens": 4, "batch_size": 2}).top_p == 1.0
    consr = PreferenceSetSettings.of(cfg["preference_sets"]["consr"])
    assert consr.lambda_ == cfg["preference_sets"]["consr"]["lambda"] and consr.selection == "reward"
    assert consr.as_dict()["lambda"] == consr.lambda_ and "lambda_" not in consr.as_dict()
    assert PreferenceSetSettings.of(consr.as_dict()) == consr
    with pytest.raises(ConfigError, match="'generation.<entry>.topp': not a field"):
        GenerationSettings.of({**GenerationSettings.from_partial(
            {"do_sample": False, "max_new_tokens": 4, "batch_size": 2}).as_dict(), "topp": 0.9})


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(RecordError, match=r"x.jsonl: record line 2"):
        read_jsonl(p)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_number_in_a_record_names_its_field(tmp_path, token):
    p = tmp_path / "prefs.jsonl"
    p.write_text('{"id": "a", "groups": [[{"text": "x", "score": 0.5}]]}\n'
                 f'{{"id": "b", "groups": [[{{"text": "x"}}, {{"text": "y", "score": {token}}}]]}}\n')
    with pytest.raises(RecordError, match=r"prefs.jsonl: record line 2 \(id b\): field 'groups\[0\]\[1\].score': "
                                          "not a finite number"):
        read_jsonl(p)


def test_conversation_errors_name_record_and_field(tmp_path):
    p = tmp_path / "conv.json"
    p.write_text(json.dumps([{"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nq"}]},
                             {"id": "b", "conversations": []}]))
    with pytest.raises(RecordError, match=r"record 1 \(id b\): field 'image': missing"):
        load_conversations(p, require_answers=False)
    p.write_text(json.dumps([{"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "q"}]}]))
    with pytest.raises(RecordError, match=r"field 'conversations\[1\]': missing the gpt answer"):
        load_conversations(p, require_answers=True)


def test_missing_and_unreadable_images_name_the_record(tmp_path):
    with pytest.raises(RecordError, match=r"prompts.jsonl: record p7: field 'image': image file not found"):
        open_image(tmp_path, "nope.png", "prompts.jsonl", "p7")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(RecordError, match="unreadable image"):
        open_image(tmp_path, "bad.png", "prompts.jsonl", "p8")


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.jsonl"

    def records():
        yield {"a": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(target, records())
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_jsonl(target, [{"a": 1}])
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert read_jsonl(target) == [{"a": 1}]


def test_seva_text_ocr_selection_from_a_665k_format_file(tmp_path):
    """LLaVA-665k records: only TextVQA / OCR-VQA images, their first 2 questions, OCR-VQA's
    short-answer instruction stripped."""
    from PIL import Image

    from prefalign.data import read_prompts
    from prefalign.stages.sample_prompts import sample_prompts

    suffix = "Answer the question using a single word or phrase."
    recs = []
    for k, folder in enumerate(["ocr_vqa/images", "textvqa/train_images", "coco/train2017", "ocr_vqa/images"]):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / folder / f"{k}.jpg")
        conv = []
        for q in range(3):
            conv += [{"from": "human", "value": ("<image>\n" if q == 0 else "") + f"q{q} of {k}?\n{suffix}"},
                     {"from": "gpt", "value": "a"}]
        recs.append({"id": str(k), "image": f"{folder}/{k}.jpg", "conversations": conv})
    (tmp_path / "mix665k.json").write_text(json.dumps(recs))
    source = {"format": "llava_json", "path": str(tmp_path / "mix665k.json"), "image_root": str(tmp_path),
              "image_prefixes": ["textvqa/", "ocr_vqa/"], "questions_per_image": 2, "strip_suffixes": [suffix],
              "question_prefixes": []}
    sample_prompts(out_path=tmp_path / "p.jsonl", prompt_set=prompt_set(source, 6), seed=0, world_dir=None)
    prompts = read_prompts(tmp_path / "p.jsonl")
    assert sorted(p["id"] for p in prompts) == ["0#0", "0#1", "1#0", "1#1", "3#0", "3#1"]
    assert all(p["question"] == f"q{p['id'][-1]} of {p['id'][0]}?" for p in prompts)
    # question_prefixes keeps one kind of question (the miniature's families), after questions_per_image
    only = {**source, "question_prefixes": ["q1 ", "q2 "]}
    sample_prompts(out_path=tmp_path / "q1.jsonl", prompt_set=prompt_set(only, 3), seed=0, world_dir=None)
    assert sorted(p["id"] for p in read_prompts(tmp_path / "q1.jsonl")) == ["0#1", "1#1", "3#1"]
    # a dataset's image carries its digest from here on: changed in place, it stops the reader
    from prefalign.data import open_record_image
    from prefalign.methods.records import make_record

    record = make_record(prompts[0], [[{"text": "a"}], [{"text": "b"}]])
    assert record["image_sha256"] == prompts[0]["image_sha256"]
    open_record_image(record, "prefs.jsonl")
    Image.new("RGB", (4, 4), "white").save(prompts[0]["image"])
    with pytest.raises(RecordError, match=f"prefs.jsonl: record {prompts[0]['id']}: field 'image': .*sha256 differs"):
        open_record_image(record, "prefs.jsonl")
    with pytest.raises(ValueError, match="asked for 7 prompts, the source has 6"):
        sample_prompts(out_path=tmp_path / "q.jsonl", prompt_set=prompt_set(source, 7), seed=0, world_dir=None)


def test_povid_release_format_prompts_and_errors(tmp_path):
    """POVID's released JSON (the file its train_dpo_inherent.py reads): LLaVA records with the
    preferred answer in `conversations` and the dispreferred one in `rejected_conversations`.
    Two records of one image under one id keep separate prompt ids."""
    from PIL import Image

    from prefalign.data import read_prompts
    from prefalign.stages.sample_prompts import sample_prompts

    (tmp_path / "train2014").mkdir()
    recs = []
    for k, (rid, q) in enumerate([("000001", "What is on the table?"), ("000002", "Describe the image."),
                                  ("000001", "What colour is the cup?")]):
        Image.new("RGB", (4, 4)).save(tmp_path / "train2014" / f"COCO_train2014_{rid}.jpg")
        human = {"from": "human", "value": f"<image>\n{q}"}
        recs.append({"id": rid, "image": f"COCO_train2014_{rid}.jpg",
                     "conversations": [human, {"from": "gpt", "value": f"chosen {k}"}],
                     "rejected_conversations": [human, {"from": "gpt", "value": f"hallucinated {k}"}]})
    (tmp_path / "povid.json").write_text(json.dumps(recs))
    source = {"format": "povid", "path": str(tmp_path / "povid.json"), "image_root": str(tmp_path / "train2014")}
    sample_prompts(out_path=tmp_path / "p.jsonl", prompt_set=prompt_set(source, 3), seed=0, world_dir=None)
    prompts = {p["id"]: p for p in read_prompts(tmp_path / "p.jsonl")}
    assert sorted(prompts) == ["000001@1", "000001@2", "000002"]
    assert prompts["000001@2"]["question"] == "What colour is the cup?"
    assert prompts["000001@2"]["image"] == str(tmp_path / "train2014" / "COCO_train2014_000001.jpg")
    for field, change, message in [
            ("rejected_conversations", lambda r: r.pop("rejected_conversations"), "missing"),
            ("rejected_conversations[0].value",
             lambda r: r["rejected_conversations"].__setitem__(0, {"from": "human", "value": "<image>\nOther?"}),
             "asks a different question"),
            ("rejected_conversations", lambda r: r["rejected_conversations"].pop(),
             "1 turns where conversations has 2"),
            ("conversations[1]", lambda r: r["conversations"].pop(), "missing the gpt answer")]:
        bad = json.loads(json.dumps(recs))
        change(bad[2])
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        where = rf"bad.json.*record 2 \(id 000001\).*field '{re.escape(field)}'"
        with pytest.raises(RecordError, match=rf"{where}.*{message}"):
            sample_prompts(out_path=tmp_path / "q.jsonl",
                           prompt_set=prompt_set({**source, "path": str(tmp_path / "bad.json")}, 1),
                           seed=0, world_dir=None)


def _rlaif_v_file(path, rows):
    """A parquet file in RLAIF-V's released schema (openbmb/RLAIF-V-Dataset)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["ds_name", "image", "question", "chosen", "rejected", "origin_dataset", "origin_split", "idx",
            "image_path"]
    pq.write_table(pa.Table.from_pylist([dict(zip(cols, r)) for r in rows]), path)


def test_rlaif_v_release_format_prompts_and_images(tmp_path):
    import io

    from PIL import Image

    from prefalign.data import read_prompts
    from prefalign.stages.sample_prompts import sample_prompts

    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
        return buf.getvalue()

    data = tmp_path / "RLAIF-V-Dataset"
    data.mkdir()
    rows = [("ds", {"bytes": png((k * 40, 0, 0)), "path": f"{k}.png"}, f"question {k}?", "yes", "no", "VQAv2",
             '{"model": "m", "type": "question answering"}', str(k), f"VQAv2/{k}.png") for k in range(5)]
    _rlaif_v_file(data / "RLAIF-V-Dataset_000.parquet", rows[:3])
    _rlaif_v_file(data / "RLAIF-V-Dataset_001.parquet", rows[3:])
    src = {"format": "rlaif_v", "path": str(data), "image_root": str(tmp_path / "images")}
    out = tmp_path / "prompts.jsonl"
    sample_prompts(out_path=out, prompt_set=prompt_set(src, 3), seed=1, world_dir=tmp_path)
    prompts = read_prompts(out)
    assert len(prompts) == 3 and len({p["id"] for p in prompts}) == 3
    for p in prompts:
        k = int(p["id"])
        assert p["question"] == f"question {k}?" and p["image"] == str(tmp_path / "images" / f"VQAv2/{k}.png")
        assert Path(p["image"]).read_bytes() == rows[k][1]["bytes"]  # written as released
    assert len(list((tmp_path / "images" / "VQAv2").iterdir())) == 3  # only the sampled prompts' images
    bad = [list(r) for r in rows[3:]]
    bad[1][2] = " "
    _rlaif_v_file(data / "RLAIF-V-Dataset_001.parquet", bad)
    with pytest.raises(RecordError, match=r"RLAIF-V-Dataset_001.parquet: record row 1: field 'question': empty"):
        sample_prompts(out_path=out, prompt_set=prompt_set(src, 3), seed=1, world_dir=tmp_path)
    _rlaif_v_file(data / "RLAIF-V-Dataset_001.parquet", rows[2:])  # idx 2 is also in file 000
    with pytest.raises(RecordError, match="field 'idx': duplicate id 2"):
        sample_prompts(out_path=out, prompt_set=prompt_set(src, 3), seed=1, world_dir=tmp_path)


def test_a_digest_manifest_names_a_changed_or_foreign_file(tmp_path):
    from prefalign.manifest import NAME, DigestError, check, write_manifest

    (tmp_path / "w" / "images").mkdir(parents=True)
    (tmp_path / "w" / "pool.json").write_text("[]")
    (tmp_path / "w" / "images" / "a.png").write_bytes(b"a")
    write_manifest(tmp_path / "w")
    assert (tmp_path / "w" / NAME).read_text().splitlines()[0].endswith("  images/a.png")
    check(tmp_path / "w", tmp_path / "w" / "images" / "a.png")
    (tmp_path / "w" / "pool.json").write_text("[{}]")
    with pytest.raises(DigestError, match="pool.json: sha256 differs"):
        check(tmp_path / "w", tmp_path / "w" / "pool.json")
    (tmp_path / "w" / "images" / "b.png").write_bytes(b"b")
    with pytest.raises(DigestError, match="b.png: not in"):
        check(tmp_path / "w", tmp_path / "w" / "images" / "b.png")


def test_paper_table_names_are_one_pattern_with_their_headings():
    from prefalign.paper_tables import NAME, heading, paper_of

    assert _schema()["properties"]["paper_tables"]["propertyNames"]["pattern"] == f"^{NAME.pattern}$"
    assert heading("smpro_table2", "group sizes") == "SMPRO Table 2: group sizes"
    assert heading("aspo_figure3", "alpha") == "ASPO Figure 3: alpha" and heading("study_x", "t") == "t"
    assert paper_of("consr_table6") == "ConSR" and paper_of("study_factorial") == "prefalign"
