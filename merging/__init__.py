"""Everything in paretomerge that touches models: experts, merge families, evaluation, the zoo,
export, the study runner and the ``paretomerge`` command line.

Submodules import torch and transformers only when they are used, so that light commands such
as ``paretomerge analyze`` start fast.
"""

__version__ = "0.1.0"
