"""Synthetic paired clinical photograph + skin ultrasound benchmark, built so fusion is necessary.

Every sample has latent attributes: surface attributes that only the clinical photograph
shows (colour family, border) and depth attributes that only the ultrasound shows
(invasion depth, echogenicity, posterior features). The class-attribute table (`TABLE`) is
chosen so the photograph alone confuses BCC with SCC and melanoma with seborrheic
keratosis, the ultrasound alone confuses BCC with nevus and SCC with melanoma, and the pair
separates all five. Each attribute deviates from its class prototype with a documented
probability, so the Bayes-optimal accuracies (`bayes_accuracies`) are known exactly.

The images depend only on the attributes and on nuisances (size, position, skin tone,
lighting, hair, gain, speckle ...), never on the class itself. Pure numpy + PIL. The
manifest also carries every attribute as a task column and two patient metadata columns
(`site`, weakly informative, and `age`), drawn apart from the images.

Modules: `attributes` (the attribute model and the draw of samples), `patient` (the
metadata), `bayes` (exact Bayes figures), `primitives`, `clinical` and `ultrasound` (the
two renderers), `render` (one pair), `tables` and `readme` (the text files of a folder),
`writer` (`generate`). `local`, `local_render` and `local_files`: the local-evidence
benchmark (`generate(kind="local")`), where one small patch per image among decoys sets
the class.
"""

from __future__ import annotations

from agfnet.constants import MODALITIES
from agfnet.data.synth.attributes import (
    ATTRIBUTE_BY_NAME,
    ATTRIBUTES,
    CLASS_NAMES,
    CLASSES,
    NOISY_ATTRIBUTES,
    TABLE,
    TWO_LESION_PATIENT_FRACTION,
    Attribute,
    SampleSpec,
    sample_attributes,
)
from agfnet.data.synth.bayes import (
    bayes_accuracies,
    bayes_accuracies_with_site,
    bayes_predict,
    class_likelihoods,
    task_bayes_accuracies,
)
from agfnet.data.synth.local import (
    DECOY_CODES,
    LOCAL_CODES,
    LOCAL_NOISE,
    LOCAL_TABLE,
    LOCAL_TASK_COLUMNS,
    PATCH_AREA,
    local_bayes_accuracies,
    sample_local,
)
from agfnet.data.synth.local_files import LOCAL_MANIFEST_COLUMNS
from agfnet.data.synth.local_render import LOCAL_NUISANCE_COLUMNS, render_local_pair
from agfnet.data.synth.patient import (
    METADATA_COLUMNS,
    METADATA_KINDS,
    SITE_TABLE,
    SITES,
    draw_metadata,
)
from agfnet.data.synth.readme import GENERATOR_VERSION, attribute_table_markdown
from agfnet.data.synth.render import RenderedPair, render_pair
from agfnet.data.synth.tables import (
    MANIFEST_COLUMNS,
    NUISANCE_COLUMNS,
    PAIR_COLUMNS,
    TASK_COLUMNS,
    TASK_OVERRIDES,
)
from agfnet.data.synth.writer import (
    KINDS,
    MAX_SIZE,
    MIN_SIZE,
    OUTPUT_FILES,
    SynthSummary,
    default_workers,
    generate,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_BY_NAME",
    "CLASSES",
    "CLASS_NAMES",
    "DECOY_CODES",
    "GENERATOR_VERSION",
    "KINDS",
    "LOCAL_CODES",
    "LOCAL_MANIFEST_COLUMNS",
    "LOCAL_NOISE",
    "LOCAL_NUISANCE_COLUMNS",
    "LOCAL_TABLE",
    "LOCAL_TASK_COLUMNS",
    "MANIFEST_COLUMNS",
    "MAX_SIZE",
    "METADATA_COLUMNS",
    "METADATA_KINDS",
    "MIN_SIZE",
    "MODALITIES",
    "NOISY_ATTRIBUTES",
    "NUISANCE_COLUMNS",
    "OUTPUT_FILES",
    "PAIR_COLUMNS",
    "PATCH_AREA",
    "SITES",
    "SITE_TABLE",
    "TABLE",
    "TASK_COLUMNS",
    "TASK_OVERRIDES",
    "TWO_LESION_PATIENT_FRACTION",
    "Attribute",
    "RenderedPair",
    "SampleSpec",
    "SynthSummary",
    "attribute_table_markdown",
    "bayes_accuracies",
    "bayes_accuracies_with_site",
    "bayes_predict",
    "class_likelihoods",
    "default_workers",
    "draw_metadata",
    "generate",
    "local_bayes_accuracies",
    "render_local_pair",
    "render_pair",
    "sample_attributes",
    "sample_local",
    "task_bayes_accuracies",
]
