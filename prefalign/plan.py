"""What a real config costs before it is submitted: per stage, FLOPs, GPU-hours, peak memory
per GPU and disk, from the base model's shapes (prefalign.shapes) and the config's counts.

    prefalign plan configs/seva_llava15_7b.yaml [--gpu a800] [--csv plan.csv]   (or python -m prefalign.plan)

Rules (stated in `ASSUMPTIONS` and printed with the table):
- forward FLOPs = 2 x parameters x tokens (the language model's body per token, its output
  layer only where logits are read, the vision tower per patch) + causal attention
  2 x layers x hidden x context per token; a LoRA training step = 2 x forward (forward and
  the gradient through the frozen weights) + 6 x LoRA parameters x tokens; the vision tower
  is frozen (forward only). With full training this is the usual 6 x parameters x tokens.
- generation: prefill is compute-bound; each decoding step of a batch takes the longest of
  reading the weights and KV cache from memory, its FLOPs, and a fixed floor per step (the
  launch-bound cost of transformers' generate, measured).
- memory: weights in the config's dtype; LoRA weights, gradients and AdamW moments in
  float32 (16 bytes per LoRA parameter); stored activations 2 x (6 x hidden + 3 x
  intermediate) bytes per token and layer (the inputs of the attention and MLP matmuls and
  norms, bf16; attention itself memory-efficient), in training also the float32 copy of each
  LoRA layer's input that peft keeps, 4 x (6 x hidden + intermediate), and the responses'
  masked attention probabilities, 4 bytes per head, layer, query and key; float32 logits and
  their log-softmax for the scored tokens; KV cache 2 x layers x kv heads x head width x 2
  bytes per token. FSDP (`processes` > 1 with `fsdp`) divides weights and LoRA state by the
  processes.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import asdict, dataclass

from . import shapes
from .config import load_config_unresolved

# Peak dense bf16 FLOP/s and memory bandwidth (B/s) from the vendors' data sheets; memory GB.
GPUS = {"a100": (312e12, 2.04e12, 80), "a800": (312e12, 2.04e12, 80), "h100": (989e12, 3.35e12, 80),
        "h200": (989e12, 4.8e12, 141), "l40s": (362e12, 0.864e12, 48)}


@dataclass(frozen=True)
class Assumptions:
    gpu: str = "a100"
    image: tuple[int, int] = (480, 640)  # (height, width): a COCO photo
    prompt_tokens: int = 60  # question and chat template
    description_tokens: int = 200  # ConSR's image description, read by revision and scoring
    response_tokens: int = 128  # mean generated length (max_new_tokens bounds memory only)
    answer_tokens: int = 16  # mean answer length on a benchmark
    kept: float = 1.0  # share of prompts that yield a preference record (SeVa keeps about half)
    # achieved share of peak FLOP/s in compute-bound passes: LoRA steps at the real configs'
    # micro-batches measured 2.5-18.5% on an H200 (docs/gpu_check.md); the papers' hours imply 4-12%
    mfu: float = 0.1
    bandwidth_share: float = 0.7  # achieved share of peak memory bandwidth while decoding
    # the least a decoding step takes, whatever the batch: transformers' generate measured 62-91 ms
    # a step at batch 2-16 for every model on an H200 (docs/gpu_check.md), launch-bound
    decode_step_s: float = 0.07


ASSUMPTIONS = Assumptions()

# Items per benchmark (the test splits lmms-eval runs; the benchmarks' papers and cards) and
# whether its answers are open-ended (judged by GPT: about 200 tokens) or short.
BENCHMARK_ITEMS = {"pope": 9000, "mme": 2374, "mmbench_en_dev": 4329, "mmbench_cn_dev": 4329, "mmstar": 1500,
                   "ai2d": 3088, "llava_in_the_wild": 60, "mmvet": 218, "seedbench": 17990, "scienceqa_img": 2017,
                   "gqa": 12578, "ocrbench": 1000, "seedbench_2_plus": 2277, "mmmu_pro": 1730,
                   "hallusion_bench_image": 951}
OPEN_ENDED = {"llava_in_the_wild", "mmvet"}


@dataclass
class Row:
    stage: str
    what: str
    jobs: int
    gpus_per_job: int
    tflop: float
    gpu_hours: float
    wall_hours: float
    peak_gb_per_gpu: float
    disk_gb: float


class Model:
    """The FLOP and byte rules above for one architecture in one dtype."""

    def __init__(self, arch: shapes.Architecture, dtype_bytes: int, a: Assumptions):
        self.arch, self.a, self.bytes = arch, a, dtype_bytes
        counts = shapes.parameter_counts(arch)
        t = arch.text
        self.head = t.vocab * t.hidden
        self.body = counts["language"] - self.head * (1 if t.tied else 2)
        self.vision = counts["vision"] + counts["projector"]
        self.total = counts["total"]
        self.lora_per_rank = counts["lora_per_rank"]
        self.image_tokens = shapes.image_tokens(arch, *a.image)
        self.patches = shapes.vision_positions(arch, *a.image)
        self.kv_per_token = 2 * t.layers * t.kv_heads * (t.hidden // t.heads) * 2
        self.peak, self.bandwidth, _ = GPUS[a.gpu]

    def lora(self, r: int) -> int:
        return r * self.lora_per_rank

    def forward(self, new: float, context: float, logits: float) -> float:
        """FLOPs of `new` tokens that attend to `context` earlier tokens on average."""
        t = self.arch.text
        return 2 * self.body * new + 2 * t.layers * t.hidden * new * context + 2 * self.head * logits

    def image(self) -> float:
        return 2 * self.vision * self.patches

    def seconds(self, flops: float) -> float:
        return flops / (self.peak * self.a.mfu)

    def decode_seconds(self, batch: int, context: float, steps: int) -> float:
        """A batch decoding `steps` tokens per sequence after `context` tokens."""
        flops = self.forward(batch, context + steps / 2, batch)
        reads = self.total * self.bytes + batch * (context + steps / 2) * self.kv_per_token
        return steps * max(flops / (self.peak * self.a.mfu), reads / (self.bandwidth * self.a.bandwidth_share),
                           self.a.decode_step_s)

    def activations(self, tokens: float) -> float:
        t = self.arch.text
        return 2 * (6 * t.hidden + 3 * t.intermediate) * t.layers * tokens

    def lora_inputs(self, tokens: float) -> float:
        """peft casts each adapted layer's input to its float32 weights and keeps that copy for
        the backward pass: q, k, v, o, gate and up read the hidden width, down the intermediate."""
        t = self.arch.text
        return 4 * (6 * t.hidden + t.intermediate) * t.layers * tokens

    def response_attention(self, queries: float, keys: float) -> float:
        """The responses' attention over the shared prefix and themselves is masked, and its
        probabilities are kept for the backward pass: about 4 bytes per head, layer, query and
        key (measured on an H200, docs/gpu_check.md; the prefix's own causal attention is not)."""
        t = self.arch.text
        return 4 * t.heads * t.layers * queries * keys

    def logits_bytes(self, tokens: float) -> float:
        return tokens * self.arch.text.vocab * (2 + 4 + 4)

    # ---- one pass of each kind, as the stages run them and benchmarks/gpu_check.py measures them

    def generation(self, sequences: int, prompt: float, new: float, batch: int) -> tuple[float, float]:
        """(FLOPs, seconds) of `sequences` of `new` tokens after `prompt` tokens, `batch` at a time."""
        prefill = sequences * (self.forward(prompt, prompt / 2, 1) + self.image())
        decode = sequences * self.forward(new, prompt + new / 2, new)
        return prefill + decode, self.seconds(prefill) + math.ceil(sequences / batch) * self.decode_seconds(
            batch, prompt, new)

    def generation_peak(self, batch: int, prompt: float, max_new: float) -> float:
        return self.total * self.bytes + batch * (prompt + max_new) * self.kv_per_token \
            + self.activations(batch * prompt) / self.arch.text.layers

    def scoring(self, items: int, prompt: float, responses: int, length: float) -> float:
        """FLOPs of shared-prefix scoring: each item's image and prompt once, its responses after them."""
        return items * (self.image() + self.forward(prompt, prompt / 2, 1)
                        + self.forward(responses * length, prompt + length / 2, responses * length))

    def scoring_peak(self, items: int, prompt: float, responses: int, length: float) -> float:
        """Without gradients one layer's activations live at a time, and the logits of one of the
        3 length-sorted chunks the responses are scored in (model.shared_prefix_token_logps)."""
        tokens = items * (prompt + responses * length)
        return self.total * self.bytes + self.activations(tokens) / self.arch.text.layers \
            + self.logits_bytes(items * responses * length / 3)

    def train_step(self, items: int, prompt: float, responses: int, length: float, lora: int) -> float:
        """FLOPs of a LoRA step: the frozen vision tower forward; the language model forward and
        backward through frozen weights (2 x forward); LoRA's forward and both gradients (6 x)."""
        text = self.scoring(items, prompt, responses, length) - items * self.image()
        return items * self.image() + 2 * text + 6 * lora * items * (prompt + responses * length)

    def train_peak(self, micro: int, prompt: float, responses: int, length: float, lora: int, shards: int = 1) -> float:
        state = (self.total * self.bytes + 16 * lora) / shards
        tokens = micro * (prompt + responses * length)
        stored = self.activations(tokens) + self.lora_inputs(tokens) \
            + self.response_attention(micro * responses * length, prompt + length)
        return state + stored + self.logits_bytes(micro * responses * length)


def scored_shape(cfg: dict, p: dict, a: Assumptions) -> tuple[int, int]:
    """(responses scored per record, their mean length) of preference set `p`: SMPRO's groups,
    a pair for every other method (a set that samples nothing: the assumed response length)."""
    responses = sum(g["per_view"] for g in p["groups"]) if p["method"] == "smpro" else 2
    if "generation" not in p:
        return responses, a.response_tokens
    return responses, min(a.response_tokens, cfg["generation"][p["generation"]]["max_new_tokens"])


def generation_row(m: Model, stage, what, *, sequences, prompt, new, max_new, batch, jobs=1) -> Row:
    """`sequences` generated of mean length `new` after `prompt` tokens, `batch` at a time."""
    flops, seconds = m.generation(sequences, prompt, new, batch)
    disk = sequences * (6 * new + 300)  # JSON: about 6 characters per token and the record's fields
    return Row(stage, what, jobs, 1, flops / 1e12, seconds / 3600, seconds / 3600 / jobs,
               m.generation_peak(batch, prompt, max_new) / 1e9, disk / 1e9)


def consr_text_rows(m: Model, cfg, described, revised, prompt, seeds) -> list[Row]:
    """ConSR's descriptions, one per prompt set and prompt text, and its revisions of every
    sampled response, one job per prompt set, prompt text and generation (shared by its sets)."""
    a, rows = m.a, []
    for pset, cp in sorted(described):
        describe = cfg["generation"][cfg["consr_prompts"][cp]["description_generation"]]
        other = cfg["consr_prompts"][cp].get("description_model")  # its own shape is not known here
        what = f"{pset} {cp}" + (f" (by {other.rstrip('/').split('/')[-1]}, at the base model's shape: a lower bound)"
                                 if other else "")
        rows.append(generation_row(m, "describe_images", what,
                                   sequences=seeds * cfg["prompt_sets"][pset]["n"],
                                   prompt=prompt, new=min(a.description_tokens, describe["max_new_tokens"]),
                                   max_new=describe["max_new_tokens"], batch=describe["batch_size"]))
    for pset, cp, gen in sorted(revised):
        revise = cfg["generation"][cfg["consr_prompts"][cp]["revision_generation"]]
        sampled = cfg["generation"][gen]
        length = min(a.response_tokens, sampled["max_new_tokens"])
        rows.append(generation_row(m, "revise_responses", f"{pset} {cp} {gen}",
                                   sequences=seeds * cfg["prompt_sets"][pset]["n"] * sampled["num_return_sequences"],
                                   prompt=prompt + a.description_tokens + length, new=length,
                                   max_new=revise["max_new_tokens"], batch=revise["batch_size"]))
    return rows


def score_row(m: Model, stage, what, *, flops, prompt, responses, length, stored=0) -> Row:
    """A scoring stage; `stored` bytes written."""
    batch = 16  # items per scoring pass (reference.compute, ConSR's and ASPO's scoring)
    return Row(stage, what, 1, 1, flops / 1e12, m.seconds(flops) / 3600, m.seconds(flops) / 3600,
               m.scoring_peak(batch, prompt, responses, length) / 1e9, stored / 1e9)


def plan_config(cfg: dict, a: Assumptions = ASSUMPTIONS) -> list[Row]:
    from .methods import responses_needed

    arch = shapes.architecture_of(cfg["base_model"]["path"])
    m = Model(arch, {"bfloat16": 2, "float16": 2, "float32": 4}[cfg.get("dtype", "bfloat16")], a)
    seeds, rows = len(cfg["seeds"]), []
    prompt = m.image_tokens + a.prompt_tokens
    sampled = set()
    for p in cfg["preference_sets"].values():
        sampled |= {(p["prompts"], view, gen) for view, gen in responses_needed(p) if view != "revised"}
    for pset, view, gen in sorted(sampled):
        g, n = cfg["generation"][gen], cfg["prompt_sets"][pset]["n"]
        rows.append(generation_row(
            m, "sample_responses", f"{pset} {view} {gen}", sequences=seeds * n * g["num_return_sequences"],
            prompt=prompt, new=min(a.response_tokens, g["max_new_tokens"]), max_new=g["max_new_tokens"],
            batch=g["batch_size"] * g["num_return_sequences"], jobs=g.get("shards", 1) * seeds))
    records, described, revised = {}, set(), set()
    for name, p in cfg["preference_sets"].items():
        n = cfg["prompt_sets"][p["prompts"]]["n"]
        records[name] = int(n * a.kept)
        responses, length = scored_shape(cfg, p, a)
        if p["method"] == "consr":
            k = p["candidates"]
            described.add((p["prompts"], p["consr_prompts"]))
            if k["revised"]:
                revised.add((p["prompts"], p["consr_prompts"], p["generation"]))
            candidates = sum(k.values())  # clean, semantic (description in the prompt) and corrupt scorings
            flops = seeds * sum(m.scoring(n, prompt + extra, candidates, length)
                                for extra in (0, a.description_tokens, 0))
            rows.append(score_row(m, "build_preferences", name, flops=flops, prompt=prompt + a.description_tokens,
                                  responses=candidates, length=length))
        elif p["method"] == "aspo":
            flops = seeds * m.scoring(records[name], prompt, 1, length)
            rows.append(score_row(m, "build_preferences", name, flops=flops, prompt=prompt, responses=1, length=length))
        rows.append(score_row(m, "reference_logps", name,
                              flops=seeds * m.scoring(records[name], prompt, responses, length), prompt=prompt,
                              responses=responses, length=length,
                              stored=records[name] * seeds * responses * 4 * length))  # float32 per token
    sampling = len(sampled)  # ConSR's text stages come after sampling, before the preference sets
    rows[sampling:sampling] = consr_text_rows(m, cfg, described, revised, prompt, seeds)
    for run_name, run in cfg["runs"].items():
        rows.append(train_row(m, cfg, run_name, run, records[run["preferences"]], prompt, len(run["seeds"])))
    models = 1 + sum(len(r["seeds"]) for r in cfg["runs"].values())
    for task in cfg["evaluation"]["tasks"]:
        items = BENCHMARK_ITEMS.get(task)
        if items is None:
            continue
        answer = 200 if task in OPEN_ENDED else a.answer_tokens
        row = generation_row(m, "evaluate", task, sequences=models * items, prompt=prompt, new=answer,
                             max_new=answer, batch=1, jobs=models)
        row.disk_gb = models * items * 2e3 / 1e9  # lmms-eval's samples: about 2 kB an item
        rows.append(row)
    return rows


def train_row(m: Model, cfg, run_name, run, records, prompt, seeds) -> Row:
    tr = cfg["training"][run["training"]]
    responses, length = scored_shape(cfg, cfg["preference_sets"][run["preferences"]], m.a)
    lora = m.lora(tr["lora"]["r"])
    passes = records * tr.get("repeat", 1) * tr["epochs"]
    flops = seeds * m.train_step(passes, prompt, responses, length, lora)
    gpus = tr.get("processes", 1)
    peak = m.train_peak(tr["micro_batch_size"], prompt, responses, length, lora, gpus if tr.get("fsdp") else 1)
    seconds = m.seconds(flops)
    disk = seeds * lora * (4 + 16)  # the adapter, and the resumable checkpoint beside it while training
    return Row("train", f"{run_name} ({passes} records x {seeds} seed)", seeds, gpus, flops / 1e12, seconds / 3600,
               seconds / 3600 / (gpus * seeds), peak / 1e9, disk / 1e9)


def markdown(rows: list[Row], a: Assumptions) -> str:
    gpu = a.gpu.upper()
    lines = [f"| stage | what | jobs | GPUs/job | TFLOP | {gpu}-hours | wall h | peak GB/GPU | disk GB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.stage} | {r.what} | {r.jobs} | {r.gpus_per_job} | {r.tflop:,.0f} | {r.gpu_hours:.2f} | "
                     f"{r.wall_hours:.2f} | {r.peak_gb_per_gpu:.1f} | {r.disk_gb:.2f} |")
    total = Row("total", "", sum(r.jobs for r in rows), 0, sum(r.tflop for r in rows),
                sum(r.gpu_hours for r in rows), 0, max(r.peak_gb_per_gpu for r in rows), sum(r.disk_gb for r in rows))
    lines.append(f"| **total** | | {total.jobs} | | {total.tflop:,.0f} | **{total.gpu_hours:.2f}** | | "
                 f"{total.peak_gb_per_gpu:.1f} | {total.disk_gb:.2f} |")
    over = [r.stage for r in rows if r.peak_gb_per_gpu > GPUS[a.gpu][2]]
    if over:
        lines.append(f"\nOver one {gpu}'s {GPUS[a.gpu][2]} GB: {', '.join(sorted(set(over)))}.")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configs", nargs="+", help="real configs (base_model.kind: pretrained); several: a section each")
    ap.add_argument("--csv", help="also write the rows here (one config)")
    ap.add_argument("--train-hours", metavar="RUN=HOURS", help="a reported wall time of a training run: "
                    "prints the share of peak FLOP/s it implies under these rules")
    for field, default in asdict(ASSUMPTIONS).items():
        if field == "image":
            ap.add_argument("--image", default="480x640", help="image height x width (default 480x640)")
        else:
            ap.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default,
                            choices=sorted(GPUS) if field == "gpu" else None)
    args = ap.parse_args(argv)
    if args.csv and len(args.configs) > 1:
        ap.error("--csv takes one config")
    h, w = map(int, args.image.split("x"))
    a = Assumptions(**{**{f: getattr(args, f) for f in asdict(ASSUMPTIONS) if f != "image"}, "image": (h, w)})
    for path in args.configs:
        cfg = load_config_unresolved(path)
        rows = plan_config(cfg, a)
        arch = shapes.architecture_of(cfg["base_model"]["path"])
        if len(args.configs) > 1:
            print(f"## {path}\n")
        print(f"{path}: {arch.hf_id}, {shapes.image_tokens(arch, h, w)} image tokens per {h} x {w} image\n")
        print(markdown(rows, a) + "\n")
        if args.train_hours:
            run, hours = args.train_hours.split("=")
            r = next((r for r in rows if r.stage == "train" and r.what.split(" ")[0] == run), None)
            if r is None:
                ap.error(f"--train-hours: no run '{run}' in {path}")
            mfu = r.tflop * 1e12 / (float(hours) * 3600 * r.gpus_per_job * r.jobs * GPUS[a.gpu][0])
            print(f"{r.what}: {hours} h on {r.gpus_per_job} {a.gpu.upper()} implies {100 * mfu:.1f}% of peak "
                  f"FLOP/s (assumed: {100 * a.mfu:.0f}%)\n")
        if args.csv:
            with open(args.csv, "w", newline="") as f:
                out = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
                out.writeheader()
                out.writerows(asdict(r) for r in rows)
    print("Assumptions: " + ", ".join(f"{k} {v}" for k, v in asdict(a).items())
          + ". The rules: python -m pydoc prefalign.plan")


if __name__ == "__main__":
    sys.exit(main())
