"""Stage 3 as a Task: the latent diffusion renderer on shapes scenes.

Each training row is a scene rendered on the fly (`scene_for_index(seed, i)`),
passed through the frozen image tokenizer (`data.image_tokenizer_dir`; "" uses
the parameter-free stand-in, for tests) into

    latent     [B, Hh, Ww, Cz] float32  normalised continuous latent (the target x0)
    codes      [B, h, w] int32          its visual tokens (the plan)
    text_ids   [B, L] int32             a caption of the scene, SentencePiece ids (its
                                        full description with data.description_prob)
    text_mask  [B, L] bool              True on real text positions
    plan       [B, Hh, Ww, Cz] float32  (model.plan_channels) the normalised latent of
                                        the tokenizer's preview decode of `codes`
    layout_ids [B, O, W] int32          (model.layout_len) the written plan: each object's
    layout_boxes [B, O, 4] float32      label ids and quantised box (data/layout.py),
    layout_mask [B, O] bool             present with probability data.layout_prob
    text_states [B, L, D_ar] float32    (text_source="ar" only) the frozen AR
                                        transformer's hidden states over `BOS caption`
                                        (`data.ar_dir`), computed in the data iterator

The iterator's whole state is its step count (row i of step s on process p is
scene (s * P + p) * b + i). With `data.source` = tfds | wds | array_record the
rows are that source's records through the Grain pipeline instead
(tasks/image_data.py: images cropped to `data.resolution`, the record's caption as
the text, its boxes as the plan; latent and codes pre-computed by `umm data build
--codes` when the records hold them), evaluated on its last
`data.held_out_records` records (held-out flow loss and a sample grid). The loss is rectified flow (models/renderer/flow.py)
with CFG context dropout and random chunk layouts. The renderer has its own
mesh and rules (config.mesh / config.rules), independent of the other stages.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.config.loading import ConfigError
from unified_mm.data.layout import objects_from_boxes
from unified_mm.data.shapes.captions import caption
from unified_mm.data.shapes.grounding import scene_boxes
from unified_mm.data.step_indexed import StepIndexedIterator
from unified_mm.models.renderer import flow
from unified_mm.models.renderer.latents import load_frontend
from unified_mm.models.renderer.model import Renderer
from unified_mm.tasks.image_data import (RendererRows, is_real, real_image_iterator,
                                         record_to_image, renderer_pretokenised)
from unified_mm.tasks.image_task import ImageTask
from unified_mm.tasks.tokenizer import render_scenes


def text_tokenizer(data):
  """The SentencePiece model the renderer reads prompts with (the AR stage's default)."""
  import ml_collections  # noqa: PLC0415

  from unified_mm.data.pipeline import load_or_train_tokenizer  # noqa: PLC0415
  # The corpus must be the AR stage's (its max_objects), so prompt ids agree.
  return load_or_train_tokenizer(ml_collections.ConfigDict(dict(
      tokenizer_dir=data.tokenizer_dir, text_vocab_size=int(data.text_vocab_size),
      max_objects=int(data.max_objects_text))))


def encode_text(tokenizer, texts: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
  """(ids [N, L] int32 zero-padded/truncated, mask [N, L] bool)."""
  ids = np.zeros((len(texts), length), np.int32)
  mask = np.zeros((len(texts), length), bool)
  for i, row in enumerate(tokenizer.encode_batch(list(texts))):
    row = row[:length]
    ids[i, :len(row)] = row
    mask[i, :len(row)] = True
  return ids, mask


def scene_text(scene, seed: int, index: int, description_prob: float) -> str:
  """The scene's full description with probability `description_prob`, else a
  caption of a random style (often partial: "a red circle" of a busier scene)."""
  rng = np.random.default_rng([seed, index, 1])
  full = description_prob > 0 and rng.random() < description_prob
  return caption(scene, rng, style="full" if full else None)


def scene_layout(scene, bins: int, seed: int, index: int, layout_prob: float):
  """The scene's plan (quantised as the transformer writes it) with probability
  `layout_prob`, else None (a row the plain path renders)."""
  if np.random.default_rng([seed, index, 4]).random() >= layout_prob:
    return None
  return objects_from_boxes(scene_boxes(scene), bins)


def scene_batch(task: RendererTask, *, seed: int, indices, min_objects: int, max_objects: int,
                description_prob: float = 0.0, layout_prob: float = 0.0
                ) -> tuple[list, np.ndarray, dict[str, np.ndarray]]:
  """(scenes, images, batch) for scene `indices` of `seed`: the latent and `task.conditioning`."""
  scenes, images = render_scenes(seed, indices, int(task.config.data.resolution), min_objects,
                                 max_objects, int(task.config.data.get("cell_align", 0)))
  z, codes = task.frontend.encode(images)
  texts = [scene_text(s, seed, int(i), description_prob) for s, i in zip(scenes, indices)]
  layouts = None
  if task.uses_layout:
    bins = int(task.config.data.layout_bins)
    layouts = [scene_layout(s, bins, seed, int(i), layout_prob) for s, i in zip(scenes, indices)]
  return scenes, images, {"latent": z, **task.conditioning(codes, texts, layouts)}


def sample_latents(task: RendererTask, model, batch: dict[str, np.ndarray], *, seed: int,
                   batch_size: int = 100, **sample) -> np.ndarray:
  """[N, Hh, Ww, Cz] normalised latents the renderer samples for `batch`'s context
  (codes, text, plan), `batch_size` rows per call, key `seed + i` for chunk i."""
  from unified_mm.models.renderer.rendering import render_latents  # noqa: PLC0415
  from unified_mm.parallel.sharding import on_mesh, params_mesh  # noqa: PLC0415
  mesh = params_mesh(model)
  n = len(batch["codes"])
  zs = []
  for i, start in enumerate(range(0, n, batch_size)):
    rows = {k: v[start:start + batch_size] for k, v in batch.items()}
    with on_mesh(mesh):
      z = render_latents(model, jax.random.key(seed + i), **sample, **task.context_inputs(rows))
    zs.append(np.asarray(jax.device_get(z)))
  return np.concatenate(zs)


class RendererData(StepIndexedIterator):
  """This process's rows of an endless, seeded stream of encoded scenes."""

  def __init__(self, task: RendererTask, process_index: int, process_count: int,
               local_batch_size: int):
    super().__init__(process_index, process_count, local_batch_size)
    self.task = task
    d = task.config.data
    self.seed = int(d.seed)
    self.min_objects, self.max_objects = int(d.min_objects), int(d.max_objects)

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    d = self.task.config.data
    _, _, batch = scene_batch(
        self.task, seed=self.seed, indices=rows, min_objects=self.min_objects,
        max_objects=self.max_objects, description_prob=float(d.get("description_prob", 0.0)),
        layout_prob=float(d.get("layout_prob", 0.0)))
    return batch


class RendererTask(ImageTask):
  name = "renderer"

  def __init__(self, config, make_evaluators=None):
    super().__init__(config, make_evaluators)
    if config.model.text_source == "ar" and not config.data.get("ar_dir"):
      raise ConfigError("model.text_source='ar' reads the frozen AR transformer: set data.ar_dir")

  @functools.cached_property
  def frontend(self):
    """The frozen image tokenizer (loaded on first use, on one local device)."""
    frontend = load_frontend(self.config.data.image_tokenizer_dir)
    m = self.config.model
    got = (frontend.latent_size, frontend.latent_channels, frontend.code_grid)
    want = (m.latent_size, m.latent_channels, m.visual_grid)
    if got != want:
      raise ConfigError(
          f"model (latent_size, latent_channels, visual_grid)={want} does not match the image "
          f"tokenizer's {got} (data.image_tokenizer_dir={self.config.data.image_tokenizer_dir!r})")
    levels = tuple(m.get("visual_levels", ()))
    if m.visual_codes and levels and levels != tuple(frontend.fsq_levels):
      raise ConfigError(f"model.visual_levels={levels} differ from the tokenizer's FSQ levels "
                        f"{tuple(frontend.fsq_levels)}")
    if m.visual_codes and m.visual_codes < frontend.num_codes:
      raise ConfigError(f"model.visual_codes={m.visual_codes} < the tokenizer's {frontend.num_codes} codes")
    return frontend

  @functools.cached_property
  def tokenizer(self):
    tok = text_tokenizer(self.config.data)
    if self.config.model.text_source == "own" and tok.vocab_size > self.config.model.text_vocab:
      raise ConfigError(f"model.text_vocab={self.config.model.text_vocab} < the text "
                        f"tokenizer's {tok.vocab_size} pieces")
    return tok

  @functools.cached_property
  def ar_text(self):
    """The frozen AR transformer's text states (text_source="ar"), else None."""
    if self.config.model.text_source != "ar":
      return None
    from unified_mm.models.renderer.ar_text import ArTextEncoder  # noqa: PLC0415
    from unified_mm.models.transformer.loader import load_ar  # noqa: PLC0415
    encoder = ArTextEncoder(load_ar(self.config.data.ar_dir, self.frontend.num_codes),
                            int(self.config.model.text_len))
    if encoder.dim != int(self.config.model.ar_dim):
      raise ConfigError(f"model.ar_dim={self.config.model.ar_dim}: the AR transformer in "
                        f"data.ar_dir has d_model={encoder.dim}")
    return encoder

  @property
  def uses_plan(self) -> bool:
    return bool(self.config.model.visual_codes and self.config.model.get("plan_channels", 0))

  @property
  def uses_layout(self) -> bool:
    return bool(self.config.model.get("layout_len", 0))

  def conditioning(self, codes: np.ndarray, texts: list[str], layouts=None
                   ) -> dict[str, np.ndarray]:
    """What the renderer reads besides the latent, for visual tokens [B, h, w], their
    texts and (optionally, per row) written plans: codes, text ids + mask (or the AR's
    text states), the plan latent, the layout arrays."""
    ids, mask = encode_text(self.tokenizer, texts, int(self.config.model.text_len))
    rows = {"codes": codes, "text_ids": ids, "text_mask": mask}
    if self.ar_text is not None:
      rows["text_states"], rows["text_mask"] = self.ar_text(texts)
    if self.uses_plan:
      rows["plan"] = self.frontend.plan_latent(codes)
    if self.uses_layout:
      from unified_mm.models.renderer.layout_inputs import layout_arrays  # noqa: PLC0415
      m = self.config.model
      rows.update(layout_arrays(self.tokenizer, layouts or [None] * len(codes),
                                int(m.layout_len), int(self.config.data.layout_bins)))
    return rows

  def build_model(self, rngs: nnx.Rngs) -> Renderer:
    return Renderer(**self.config.model, rngs=rngs)

  def context_inputs(self, batch) -> dict:
    inputs = {}
    if self.config.model.visual_codes:
      inputs["codes"] = batch["codes"]
    if self.uses_plan:
      inputs["plan"] = batch["plan"]
    if self.uses_layout:
      for key in ("layout_ids", "layout_boxes", "layout_mask"):
        inputs[key] = batch[key]
    if self.config.model.text_source == "own":
      inputs["text_ids"], inputs["text_mask"] = batch["text_ids"], batch["text_mask"]
    elif self.config.model.text_source == "ar":
      inputs["text_states"], inputs["text_mask"] = batch["text_states"], batch["text_mask"]
    return inputs

  def loss(self, model: Renderer, batch, rng: jax.Array):
    c = self.config.loss
    inputs = self.context_inputs(batch)
    plan_loss = None
    if model.plan_refiner is not None or model.layout_plan is not None:
      refined = model.base_plan(inputs)
      plan_loss = jnp.mean(jnp.square(refined - batch["latent"]))
      inputs["plan"] = jax.lax.stop_gradient(refined)  # the flow loss does not train the plan
    loss, metrics = flow.training_loss(
        model, model.diffusion_target(batch["latent"], inputs.get("plan")), rng,
        context_inputs=inputs,
        drop_prob=float(c.drop_prob), time_distribution=c.time_distribution,
        time_mean=float(c.time_mean), time_std=float(c.time_std),
        chunk_choices=tuple(int(k) for k in c.chunk_choices))
    if plan_loss is not None:
      metrics = {**metrics, "flow_loss": loss, "plan_mse": plan_loss}
      loss = loss + float(c.get("plan_weight", 1.0)) * plan_loss
      metrics["loss"] = loss
    return loss, metrics

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    axes = {"latent": ("batch", "height", "width", "channels"),
            "codes": ("batch", "height", "width"),
            "text_ids": ("batch", "length"),
            "text_mask": ("batch", "length")}
    if self.config.model.text_source == "ar":
      axes["text_states"] = ("batch", "length", "embed")
    if self.uses_plan:
      axes["plan"] = ("batch", "height", "width", "channels")
    if self.uses_layout:
      axes |= {"layout_ids": ("batch", None, None), "layout_boxes": ("batch", None, None),
               "layout_mask": ("batch", None)}
    return axes

  def make_data(self, process_index: int, process_count: int, local_batch_size: int):
    data = self.config.data
    if is_real(data):
      to_image = record_to_image(data, need_caption=True,
                                 pretokenised=renderer_pretokenised(self))
      return real_image_iterator(data, to_image, RendererRows(self), stage=self.name,
                                 process_index=process_index, process_count=process_count,
                                 local_batch_size=local_batch_size)
    return RendererData(self, process_index, process_count, local_batch_size)

  def _real_evaluators(self) -> list:
    """Held-out flow loss and a sample grid of the source's held-out records
    (on the shapes world the experiment's `make_evaluators`: held-out rendering)."""
    from unified_mm.data.image_records import held_out_rows, image_source  # noqa: PLC0415
    from unified_mm.tasks.held_out import HeldOutLoss  # noqa: PLC0415
    from unified_mm.tasks.real_evaluators import RendererSamples  # noqa: PLC0415
    data, e = self.config.data, self.config.get("eval", {})
    to_image = record_to_image(data, need_caption=True, pretokenised=renderer_pretokenised(self))
    rows = held_out_rows(data, to_image, image_source(data))
    if not rows:
      return []
    n = int(e.get("batch_size", 16))
    batches = [RendererRows(self)(rows[i:i + n]) for i in range(0, len(rows), n)]
    batch = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    return [HeldOutLoss("renderer", self.loss, batches),
            RendererSamples(self.frontend, functools.partial(
                sample_latents, self, seed=0, batch_size=n, **self.config.sample), batch,
                grid_images=int(e.get("grid_images", 8)), out_dir=self.workdir)]

  def tokens_in(self, batch) -> int:
    return int(np.prod(np.shape(batch["latent"])[:3]))  # latent positions


def make_task(config, make_evaluators=None) -> RendererTask:
  return RendererTask(config, make_evaluators)
