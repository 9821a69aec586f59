"""`umm plan`'s answer: sizes, FLOPs, memory (analytic and XLA's), fit, step time."""

from __future__ import annotations

import dataclasses

from unified_mm.plan.aot import CompiledStep
from unified_mm.plan.hardware import GIB, Topology
from unified_mm.plan.memory import MemoryEstimate


def train_flops(config) -> int | None:
  """FLOPs of one optimiser step: the counter `umm bench` uses (transformer stages),
  the renderer's (models/renderer/flops.py); None for the tokenizer (no counter)."""
  if config.stage == "renderer":
    from unified_mm.models.renderer.flops import train_flops_per_step as renderer_flops
    return int(renderer_flops(config.model, batch_size=int(config.train.batch_size)))
  if config.stage not in ("lm", "ar") or "seq_len" not in config.data:
    return None
  from unified_mm.models.transformer.flops import train_flops_per_step
  return int(train_flops_per_step(config.model, seq_len=int(config.data.seq_len),
                                  batch_size=int(config.train.batch_size)))


@dataclasses.dataclass
class PlanReport:
  config: str
  topology: Topology
  mesh: dict[str, int]
  params: int
  tokens_per_step: int | None
  flops_per_step: int | None
  memory: MemoryEstimate
  mfu: float
  compiled: CompiledStep | None = None
  aot_skipped: str = ""           # why there is no AOT figure

  @property
  def hbm(self) -> int:
    return self.topology.chip.hbm_bytes

  @property
  def needed_bytes(self) -> int:
    """The figure the fit is judged on: XLA's when compiled, else the analytic one."""
    c = self.compiled
    if c is not None and c.fits:
      return c.peak_bytes
    if c is not None and c.needed_bytes:
      return c.needed_bytes
    return self.memory.total

  @property
  def fits(self) -> bool:
    if self.compiled is not None:
      return self.compiled.fits
    return self.memory.total <= self.hbm

  @property
  def step_seconds(self) -> float | None:
    if not self.flops_per_step:
      return None
    peak = self.topology.num_devices * self.topology.chip.peak_flops
    return self.flops_per_step / (peak * self.mfu)

  def to_json(self) -> dict:
    c = self.compiled
    return {
        "config": self.config, "topology": self.topology.name,
        "devices": self.topology.num_devices, "mesh": self.mesh, "params": self.params,
        "tokens_per_step": self.tokens_per_step, "flops_per_step": self.flops_per_step,
        "flops_per_token": (self.flops_per_step / self.tokens_per_step
                            if self.flops_per_step and self.tokens_per_step else None),
        "analytic_bytes": dataclasses.asdict(self.memory) | {"total": self.memory.total},
        "xla_bytes": None if c is None or not c.fits else {
            "argument": c.argument_bytes, "output": c.output_bytes, "alias": c.alias_bytes,
            "temp": c.temp_bytes, "code": c.code_bytes, "peak": c.peak_bytes},
        "xla_flops_per_device": None if c is None else c.flops,
        "compile_seconds": None if c is None else round(c.compile_seconds, 1),
        "out_of_memory": "" if c is None else c.out_of_memory,
        "aot_skipped": self.aot_skipped,
        "hbm_bytes": self.hbm, "needed_bytes": self.needed_bytes, "fits": self.fits,
        "mfu": self.mfu, "step_seconds": self.step_seconds,
    }


def _gib(n: int | float | None) -> str:
  if n is None:
    return "-"
  return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / 2**20:.1f} MiB"


def _count(n: float | None, unit: str = "") -> str:
  if n is None:
    return "n/a"
  for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
    if abs(n) >= scale:
      return f"{n / scale:.3g} {suffix}{unit}"
  return f"{n:.3g} {unit}".rstrip()


def _memory_table(r: PlanReport) -> list[str]:
  m, c = r.memory, r.compiled
  xla = c is not None and c.fits
  rows = [f"  {'per device':<28}{'analytic':>14}{'XLA (AOT)' if xla else '':>14}",
          f"  {'params':<28}{_gib(m.params):>14}",
          f"  {'optimizer state':<28}{_gib(m.optimizer):>14}"]
  if m.ema:
    rows.append(f"  {'EMA params':<28}{_gib(m.ema):>14}")
  rows.append(f"  {'gradients':<28}{_gib(m.gradients):>14}")
  rows.append(f"  {f'activations (remat={m.remat})':<28}"
              f"{_gib(m.activations) if m.activations is not None else 'n/a':>14}")
  if xla:
    rows.append(f"  {'XLA arguments (state+batch)':<28}{'':>14}{_gib(c.argument_bytes):>14}")
    rows.append(f"  {'XLA temporaries':<28}{'':>14}{_gib(c.temp_bytes):>14}")
    rows.append(f"  {'XLA outputs not aliased':<28}{'':>14}"
                f"{_gib(c.output_bytes - c.alias_bytes):>14}")
    rows.append(f"  {'XLA code':<28}{'':>14}{_gib(c.code_bytes):>14}")
  rows.append(f"  {'total':<28}{_gib(m.total):>14}{_gib(c.peak_bytes) if xla else '':>14}")
  return rows


def format_report(r: PlanReport) -> str:
  t = r.topology
  lines = [
      f"umm plan: {r.config} on {t.name}",
      f"  {t.num_slices} x {t.accelerator_type} ({t.shape_str}): {t.num_devices} devices, "
      f"{t.hosts_per_slice * t.num_slices} hosts; {t.chip.hbm_bytes / GIB:.0f} GiB HBM and "
      f"{t.chip.peak_flops / 1e12:.0f} TFLOP/s bf16 per chip",
      "  mesh " + " ".join(f"{k}={v}" for k, v in r.mesh.items()),
      f"parameters       {r.params:,} ({_count(r.params)})",
  ]
  if r.flops_per_step:
    lines.append(f"FLOPs / token    {_count(r.flops_per_step / r.tokens_per_step, 'FLOP')} "
                 f"(train: forward + backward)")
    lines.append(f"FLOPs / step     {_count(r.flops_per_step, 'FLOP')} "
                 f"({r.tokens_per_step:,} tokens)")
  lines.append("memory")
  lines += _memory_table(r)
  c = r.compiled
  if c is not None:
    lines.append(f"AOT compile      {c.compile_seconds:.1f} s for {t.name}")
    if c.flops:
      counted = (f"; the counter gives {_count(r.flops_per_step / t.num_devices, 'FLOP')}"
                 if r.flops_per_step else "")
      lines.append(f"XLA cost         {_count(c.flops, 'FLOP')} per device per step "
                   f"(as executed, remat included){counted}")
  elif r.aot_skipped:
    lines.append(f"AOT compile      skipped: {r.aot_skipped}")
  verdict = "fits" if r.fits else "DOES NOT FIT"
  source = "XLA" if c is not None else "analytic"
  usable = ""
  if c is not None and c.available_bytes:
    usable = f", {c.available_bytes / GIB:.2f} GiB usable"
  lines.append(f"HBM              {verdict}: needs {r.needed_bytes / GIB:.2f} GiB of "
               f"{r.hbm / GIB:.0f} GiB per device{usable} ({source})")
  if c is not None and c.out_of_memory:
    lines.append("  XLA: " + c.out_of_memory.splitlines()[0][:400])
  if r.step_seconds:
    tok = r.tokens_per_step / r.step_seconds if r.tokens_per_step else None
    lines.append(f"step time        {r.step_seconds:.3g} s at {r.mfu:.0%} MFU"
                 + (f" ({_count(tok)} tokens/s)" if tok else ""))
  return "\n".join(lines) + "\n"


def tokens_per_step(config) -> int | None:
  """Sequence positions per step; for the renderer, latent tokens (patches)."""
  if config.stage == "renderer":
    from unified_mm.models.renderer.flops import tokens_per_image
    return int(config.train.batch_size) * tokens_per_image(config.model)
  if "seq_len" not in config.data:
    return None
  return int(config.train.batch_size) * int(config.data.seq_len)
