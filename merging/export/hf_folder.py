"""The Hugging Face folder of an export: its generation config and its chat template, which
carry what the study added to every prompt and how it decoded."""

from __future__ import annotations

import json
from pathlib import Path


def write_generation_config(path: Path, settings, model) -> None:
    """The study's generation settings as the folder's ``generation_config.json``: length,
    greedy or sampling, and the end-of-turn tokens the study stopped at."""
    from transformers import GenerationConfig

    from merging.generation import stop_token_ids
    from merging.policy import load_tokenizer

    try:
        config = GenerationConfig.from_pretrained(path)
    except OSError:
        config = GenerationConfig.from_model_config(model.config)
    config.max_new_tokens = settings.max_new_tokens
    config.do_sample = settings.do_sample
    if settings.do_sample:
        config.temperature, config.top_p = settings.temperature, settings.top_p
    else:
        config.temperature = config.top_p = config.top_k = None
    stops = stop_token_ids(load_tokenizer(path), model)
    if stops:
        config.eos_token_id = stops
    config.save_pretrained(path)


def bake_chat_template(
    path: Path, system_prompt: str | None, suffix: str | None, transform=None
) -> None:
    """Write into the exported chat template what the study added to every prompt: its system
    prompt (when the conversation has none, as ``merging.generation.render`` does) and, for
    rewards-in-context, the desired rewards after the last user message (``suffix``, from
    ``merging.ric.condition_suffix``). Checked: the template renders what the study rendered,
    the family's ``transform`` then ``render`` with the original template."""
    from merging.data import Prompt
    from merging.generation import render
    from merging.policy import load_tokenizer

    prelude = ""
    if suffix is not None:
        prelude += (
            "{%- if messages and messages[-1]['role'] == 'user' -%}"
            "{%- set messages = messages[:-1] + [{'role': 'user', 'content': "
            f"messages[-1]['content'] + {json.dumps(suffix)}" + "}] -%}"
            "{%- endif -%}\n"
        )
    if system_prompt is not None:
        prelude += (
            "{%- if not messages or messages[0]['role'] != 'system' -%}"
            "{%- set messages = [{'role': 'system', 'content': "
            f"{json.dumps(system_prompt)}" + "}] + messages -%}"
            "{%- endif -%}\n"
        )
    jinja = path / "chat_template.jinja"
    config_file = path / "tokenizer_config.json"
    if jinja.is_file():
        original = jinja.read_text()
        jinja.write_text(prelude + original)
    else:
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if not config.get("chat_template"):
            raise ValueError("the tokenizer has no chat template to write the prompt into")
        original = config["chat_template"]
        config["chat_template"] = prelude + original
        config_file.write_text(json.dumps(config, indent=2) + "\n")
    exported = load_tokenizer(path)
    for text in ("Hello?", "How do I bake bread?\nStep by step."):
        prompt = Prompt(({"role": "user", "content": text},))
        shown = transform(prompt) if transform is not None else prompt
        want = render(exported, shown, system_prompt, chat_template=original)
        if render(exported, prompt) != want:
            raise RuntimeError("the exported chat template does not render the study's prompt")
