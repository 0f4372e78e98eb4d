"""Real model shapes for benchmarks and tests: configs only, random weights, no download.

The three sizes paretomerge's users bring, as their published ``config.json`` files give them
(the parameter counts are the published ones: 134,515,008; 1,543,714,304; 8,030,261,248).
"""

from __future__ import annotations

REAL_SHAPES = {
    "smollm2-135m": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
    "qwen2.5-1.5b": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    "llama-3-8b": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 128000,
        "eos_token_id": 128009,
    },
}
PARAMETERS = {
    "smollm2-135m": 134_515_008,
    "qwen2.5-1.5b": 1_543_714_304,
    "llama-3-8b": 8_030_261_248,
}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def config(name: str, **overrides):
    """The ``transformers`` config of a real shape (``overrides`` for tiny variants)."""
    from transformers import AutoConfig

    values = {**REAL_SHAPES[name], **overrides}
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, **values)
