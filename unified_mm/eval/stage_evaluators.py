"""The evaluators each training stage is handed, and the factory that hands them.

Evaluators sit above tasks: they render, sample and caption through the
tasks' own functions, so a task never imports one. Instead the layer above
builds the task with its stage's `make_evaluators(task) -> list`, which the
task calls once, at the first evaluation (after the trainer bound its workdir):

    task = make_task(config)                     # what `umm train` trains
    train_and_evaluate(config, workdir, task)    # unified_mm.train

  tokenizer       TokenizerEvaluator on `eval.num_scenes` held-out scenes
  renderer        RendererEvaluator from the held-out scenes' true visual tokens
  latent_decoder  RenderedLatentEvaluator: the frozen renderer's samples, decoded
  ar              CaptionMatch on `eval.caption_scenes` held-out 1-2 object scenes
  lm              none beyond its held-out loss
"""

from __future__ import annotations

from unified_mm import tasks


def tokenizer_evaluators(task) -> list:
  from unified_mm.eval.tokenizer_eval import TokenizerEvaluator  # noqa: PLC0415
  e = task.config.eval
  if not int(e.num_scenes):
    return []
  return [TokenizerEvaluator(
      seed=int(e.seed), num_scenes=int(e.num_scenes), resolution=int(task.config.data.resolution),
      max_objects=int(e.max_objects), batch_size=int(e.batch_size),
      analyze_scenes=int(e.analyze_scenes), grid_images=int(e.grid_images),
      out_dir=task.workdir, align=int(task.config.data.get("cell_align", 0)))]


def renderer_evaluators(task) -> list:
  from unified_mm.eval.renderer_eval import RendererEvaluator  # noqa: PLC0415
  e = task.config.eval
  if not int(e.num_scenes):
    return []
  return [RendererEvaluator(task, num_scenes=int(e.num_scenes), out_dir=task.workdir,
                            description_prob=float(e.get("description_prob", 0.0)),
                            layout_prob=float(e.get("layout_prob", 0.0)), **task.config.sample)]


def latent_decoder_evaluators(task) -> list:
  """Held-out scenes sampled by the frozen renderer once; each eval only decodes them."""
  from unified_mm.eval.latent_decoder_eval import RenderedLatentEvaluator  # noqa: PLC0415
  from unified_mm.eval.renderer_eval import RendererEvaluator  # noqa: PLC0415
  e = task.config.eval
  if not int(e.num_scenes):
    return []
  model, renderer_task = task.renderer
  held_out = RendererEvaluator(renderer_task, num_scenes=int(e.num_scenes), seed=int(e.seed),
                               max_objects=int(e.max_objects), out_dir=task.workdir,
                               description_prob=float(e.description_prob),
                               **renderer_task.config.sample)
  latents = task.denormalise(held_out.render(model)[0])
  return [RenderedLatentEvaluator(held_out, latents)]


def caption_evaluators(task) -> list:
  from unified_mm.eval.caption_eval import CaptionMatch  # noqa: PLC0415
  from unified_mm.tasks.ar import EVAL_SEED_OFFSET  # noqa: PLC0415
  data = task.config.data
  scenes = int(task.config.get("eval", {}).get("caption_scenes", 0))
  if not scenes or data.source != "shapes":
    return []
  return [CaptionMatch(task, num_scenes=scenes, seed=int(data.seed) + EVAL_SEED_OFFSET)]


EVALUATORS = {
    "tokenizer": tokenizer_evaluators,
    "renderer": renderer_evaluators,
    "latent_decoder": latent_decoder_evaluators,
    "ar": caption_evaluators,
}


def make_task(config):
  """The task `config.stage` names, handed its stage's evaluators."""
  return tasks.make_task(config, EVALUATORS.get(config.stage))
