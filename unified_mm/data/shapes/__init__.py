"""The procedural shapes world: scenes, pixels, captions, edits, and the
analyzer and scorer that read images back (the built-in GenEval-style benchmark).

Pure numpy + PIL (+ scipy.ndimage for connected components); no JAX.
`render` is not re-exported here: it would shadow the `render` module.

    from unified_mm.data.shapes.render import render

    scene = sample_scene(seed, resolution=64, max_objects=4)
    image = render(scene)                       # [H, W, 3] uint8
    text, spec = describe(scene, rng)           # caption and what it asserts
    score(spec, image)["correct"]               # True on clean renders
"""

from unified_mm.data.shapes.analyzer import analyze
from unified_mm.data.shapes.captions import STYLES, caption, describe, parse_caption
from unified_mm.data.shapes.edits import Edit, check_edit, parse_edit, plan_edit, sample_edit
from unified_mm.data.shapes.preview import preview_grid
from unified_mm.data.shapes.prompts import benchmark, sample_prompt
from unified_mm.data.shapes.scene import Obj, Scene, sample_scene, scene_for_index
from unified_mm.data.shapes.scorer import multiset_match, score, summarize
from unified_mm.data.shapes.spec import CATEGORIES, Item, PromptSpec, Relation
from unified_mm.data.shapes.vocab import BACKGROUND, COLOURS, KINDS, SIZES

__all__ = [
    "BACKGROUND", "CATEGORIES", "COLOURS", "Edit", "Item", "KINDS", "Obj", "PromptSpec",
    "Relation", "SIZES", "STYLES", "Scene", "analyze", "benchmark", "caption", "check_edit",
    "describe", "multiset_match", "parse_caption", "parse_edit", "plan_edit", "preview_grid",
    "sample_edit", "sample_prompt", "sample_scene", "scene_for_index", "score",
    "summarize",
]
