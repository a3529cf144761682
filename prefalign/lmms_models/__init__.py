"""Model classes this package registers with lmms-eval (entry-point group `lmms_eval.models`,
declared in pyproject.toml). Only the manifest is built here: lmms-eval imports a class when a
run asks for it, so registering costs no import of transformers."""


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="llava_hf_batched",
                          chat_class_path="prefalign.lmms_models.llava_hf_batched.LlavaHfBatched")]
