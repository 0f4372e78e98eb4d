"""Head fixtures shared by the head tests."""

from __future__ import annotations

import pytest
import torch

from tests.merging.conftest import save_tokenizer


@pytest.fixture(scope="session")
def seq_cls(tmp_path_factory):
    """A tiny random GPT-2 sequence classifier (a stand-in for a reward model)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    folder = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=128, num_labels=1,
                     pad_token_id=0, architectures=["GPT2ForSequenceClassification"])  # fmt: skip
    GPT2ForSequenceClassification(cfg).save_pretrained(folder)
    save_tokenizer(folder)
    return folder
