"""Rule revise_responses (ConSR): each clean sample rewritten by the model given its own
description, the question and that sample (the revision template), on the clean image."""
from __future__ import annotations

from ..data import open_record_image, read_descriptions, read_prompts
from ..io import RecordError, read_jsonl, write_jsonl
from ..settings import GenerationSettings
from .sample_responses import generate_batches


def revise_responses(*, prompts_path, model_dir, descriptions_path, responses_path, out_path, template: str,
                     generation_name: str, generation: GenerationSettings, seed: int, device: str, dtype: str) -> None:
    from ..model import load_model

    model, processor = load_model(model_dir, dtype=dtype, device=device)
    prompts = read_prompts(prompts_path)
    descriptions = read_descriptions(descriptions_path)
    sampled = {r["id"]: r for r in read_jsonl(responses_path)}
    jobs = []  # (prompt, sample index, revision prompt)
    for p in prompts:
        if p["id"] not in sampled:
            raise RecordError(responses_path, p["id"], "id", "no sampled responses for this prompt")
        if p["id"] not in descriptions:
            raise RecordError(descriptions_path, p["id"], "id", "no description for this prompt")
        for k, r in enumerate(sampled[p["id"]]["responses"]):
            jobs.append((p, k, template.format(description=descriptions[p["id"]], question=p["question"],
                                               response=r["text"])))

    def images(part):
        return [open_record_image(p, prompts_path) for p, _, _ in part]

    # grouped by the original question: a revision is about as long as the answer it revises
    gens = generate_batches(model, processor, jobs, images, [q for _, _, q in jobs], generation, seed,
                            "revise responses", group_by=[p["question"] for p, _, _ in jobs])
    revised = {}
    for i, (p, k, _) in enumerate(jobs):
        text, n_tokens = gens[i][0]
        revised.setdefault(p["id"], []).append({"text": text, "n_tokens": n_tokens, "revises": k})
    write_jsonl(out_path, [{**p, "view": "revised", "generation": generation_name, "responses": revised[p["id"]]}
                           for p in prompts])
