import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from prefalign.settings import LoraSettings
from prefalign.model import chat_prompt, generate, load_model


def test_roundtrip_through_auto_classes(tmp_path, tiny_model, small_world):
    model, processor = tiny_model
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path)).__name__ == "LlavaForConditionalGeneration"
    assert type(AutoProcessor.from_pretrained(tmp_path)).__name__ == "LlavaProcessor"
    m2, p2 = load_model(str(tmp_path))
    from prefalign.data import open_image

    img = open_image(small_world / "images", "eval_describe_000000.png", "t", 0)
    a = generate(model, processor, [img], ["describe the image."], max_new_tokens=6)
    b = generate(m2, p2, [img], ["describe the image."], max_new_tokens=6)
    assert a == b and 1 <= a[0][0][1] <= 6


def test_chat_template_renders_lmms_eval_string_and_typed_parts_alike(tiny_model):
    _, processor = tiny_model
    typed = chat_prompt(processor, "what colour is the circle?")
    as_string = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nwhat colour is the circle?"}], tokenize=False,
        add_generation_prompt=True)
    assert typed == as_string
    ids = processor.tokenizer(typed)["input_ids"]
    assert processor.tokenizer.unk_token_id not in ids


def test_decoding_restores_spacing(tiny_model):
    tok = tiny_model[1].tokenizer
    text = "there is a small red circle at the top left. there is a sign reading 42 at the center."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_a_truncated_model_or_adapter_file_is_named(tmp_path, tiny_model):
    from prefalign.model import ModelFileError
    from prefalign.training import add_lora

    model, processor = tiny_model
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    lora = LoraSettings.from_partial({"r": 2, "alpha": 4})
    add_lora(load_model(str(tmp_path / "model"))[0], lora).save_pretrained(tmp_path / "adapter")
    for folder, file in (("adapter", "adapter_model.safetensors"), ("model", "model.safetensors")):
        weights = tmp_path / folder / file
        weights.write_bytes(weights.read_bytes()[:100])
        with pytest.raises(ModelFileError, match=f"{tmp_path / folder}: cannot read the"):
            load_model(str(tmp_path / "model"), adapter=str(tmp_path / "adapter"))
