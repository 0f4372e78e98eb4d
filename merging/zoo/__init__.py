"""The embedded model zoo: a base, reward heads, per-objective experts and a RiC model.

``build_zoo("smol")`` makes SmolLM2-135M-Instruct's zoo from HH-RLHF on a CPU in well under
30 minutes; ``build_zoo("tiny")`` the same components from a 2-layer random Llama and generated
pairs in under a minute, for tests. Each component is built once into its own folder under the
zoo folder and marked done with ``step.json`` (timings and metrics); a second build skips what
is done, so an interrupted build resumes where it stopped. ``zoo.json`` lists the components.
"""

from merging.zoo.builder import ZooManifest, build_zoo, default_zoo_dir, load_zoo
from merging.zoo.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "ZooManifest", "build_zoo", "default_zoo_dir", "load_zoo"]
