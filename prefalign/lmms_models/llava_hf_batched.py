"""`llava_hf_batched`: lmms-eval's `llava_hf` with batched, left-padded `generate_until`.

`llava_hf` resolves in lmms-eval 0.7.3 to its chat class (`lmms_eval.models.chat.llava_hf`),
which builds each prompt from the task's chat messages with the processor's chat template
and asserts a batch size of 1 when generating, so an evaluation makes one forward pass per
item and token. This class keeps everything of that class (loading, messages, chat
template, `loglikelihood`) and generates `batch_size` items at once. Greedy answers equal
batch-size-1 answers except where float rounding of a padded batch flips a near-tie
between the top two logits (tests/test_evaluation.py checks exactly that).

Unlike `llava_hf`, a failed generation raises instead of scoring an empty answer.
"""
from __future__ import annotations

import torch
from lmms_eval import utils
from lmms_eval.api.instance import GenerationResult, TokenCounts
from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.protocol import ChatMessages
from tqdm import tqdm


class LlavaHfBatched(LlavaHf):
    # lmms-eval tasks key model-specific prompts by model name: this class is asked as llava_hf is
    task_model_name = "llava_hf"
    # a failed generation raises here, so an empty answer is the model's own (evaluation.check_responses)
    generation_failures_raise = True

    def batch_inputs(self, messages: list[list[dict]]):
        """Processor inputs of a batch of chat conversations, left-padded (`llava_hf` sets the
        tokenizer's side), each rendered as `llava_hf` renders it."""
        texts, images = [], []
        for conversation in messages:
            chat = ChatMessages(messages=conversation)
            visuals, videos, _ = chat.extract_media()
            if videos:
                raise ValueError("llava_hf_batched generates from images only; use llava_hf for video tasks")
            images += visuals
            texts.append(self._image_processor.apply_chat_template(chat.model_dump()["messages"], tokenize=False,
                                                                   add_generation_prompt=True))
        inputs = self._image_processor(images=images or None, text=texts, padding=True, return_tensors="pt")
        return inputs.to(self._device, self.model.dtype)

    def generate_until(self, requests) -> list[GenerationResult]:
        # Grouped by generation settings, longest contexts first (less padding per batch).
        order = utils.Collator([r.args for r in requests], lambda x: (-len(x[0]), x[3]),
                               group_fn=lambda x: x[2], grouping=True)
        results = []
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="Model Responding (batched)")
        for chunk in order.get_batched(n=self.batch_size, batch_fn=None):
            contexts, doc_to_messages, all_gen_kwargs, doc_ids, tasks, splits = zip(*chunk)
            gen_kwargs = dict(all_gen_kwargs[0])  # the same for the whole chunk (grouping)
            temperature = gen_kwargs.get("temperature", 0)
            # a chunk may mix tasks whose generation settings are equal
            messages = [to_messages(self.task_dict[task][split][i])
                        for to_messages, i, task, split in zip(doc_to_messages, doc_ids, tasks, splits)]
            inputs = self.batch_inputs(messages)
            with torch.inference_mode():
                generated = self.model.generate(
                    **inputs, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                    top_p=gen_kwargs.get("top_p"), num_beams=gen_kwargs.get("num_beams", 1),
                    max_new_tokens=gen_kwargs.get("max_new_tokens", 1024), use_cache=self.use_cache,
                    pad_token_id=self.eot_token_id, eos_token_id=self.eot_token_id)
            new_tokens = generated[:, inputs["input_ids"].shape[1]:]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for context, tokens, text in zip(contexts, new_tokens, texts, strict=True):
                ends = (tokens == self.eot_token_id).nonzero()
                produced = int(ends[0]) + 1 if len(ends) else len(tokens)  # as batch 1 counts: up to EOS
                results.append(GenerationResult(text=text, token_counts=TokenCounts(output_tokens=produced)))
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            progress.update(len(chunk))
        progress.close()
        return order.get_original(results)
