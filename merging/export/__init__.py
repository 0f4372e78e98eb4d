"""Export a study's trial: what users take home.

A trial becomes a folder with
- the merged weights as a Hugging Face folder (safetensors, sharded past ``max_shard_size``,
  config, tokenizer with its chat template, a generation config holding the study's
  generation settings); for ``rewards_in_context`` the RiC model with the desired rewards
  written into its chat template, so that plain generation sees what the study evaluated;
- ``mergekit_config.yml``, which ``mergekit-yaml`` turns into the same weights (LoRA experts
  are written ``BASE+ADAPTER``, mergekit's own syntax for an adapter merged into its base);
- ``README.md``, a model card with a Hugging Face metadata header: scores with standard errors
  and senses, rank on the study's front and the probability of being non-dominated, family and
  ``x``, the checkpoints with content hashes, the prompts, the generation settings, and how to
  reproduce it;
- ``export.json``, written last: the study, the trial, when and by which paretomerge.

The folder is written beside its target and moved into place complete, so that an export
that is killed leaves the target absent or as it was (``is_finished_export`` tells a finished
one). The weights are made by the same code the study evaluated with: the trial's stored recipe
applied to the study's expert set in place (``ResidentMerger``), then written out. The
dashboard exports into the study's own folder only (``export_in_study``).
"""

from merging.export.card import export_command
from merging.export.folder import (
    CARD_FILE,
    MARKER_FILE,
    MERGEKIT_FILE,
    check_out,
    export_marker,
    is_export_folder,
    is_finished_export,
    write_marker,
)
from merging.export.study_folder import (
    StudyExport,
    export_in_study,
    exports_folder,
    study_export,
)
from merging.export.trial import DEFAULT_SHARD, export_front, export_trial

__all__ = [
    "CARD_FILE",
    "DEFAULT_SHARD",
    "MARKER_FILE",
    "MERGEKIT_FILE",
    "StudyExport",
    "check_out",
    "export_command",
    "export_front",
    "export_in_study",
    "export_marker",
    "export_trial",
    "exports_folder",
    "is_export_folder",
    "is_finished_export",
    "study_export",
    "write_marker",
]
