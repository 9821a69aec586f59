"""Accelerator facts and topology names: what `v5p-256` or `2xv5p-256` means.

A topology string names one slice (`v5p-256`, `v5e-16`, `v6e-256`, `v4-8`),
several identical slices joined over DCN (`2xv5p-256`), or GPU hosts
(`h100-8` = one host with 8 GPUs, `h100-16` = two hosts). The numbers follow
Google's accelerator-type names: v4/v5p count TensorCores (2 per chip, one
JAX device per chip in megacore mode), v5e/v6e count chips.

Peak figures are dense bf16 matmul throughput and HBM per chip from the
vendors' public spec sheets.
"""

from __future__ import annotations

import dataclasses
import math
import re

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str                 # "v5p", "h100"
  hbm_bytes: int
  peak_flops: float         # bf16 FLOP/s per chip (one JAX device)
  cores_in_name: int        # accelerator-type number / chips
  dims: int                 # torus dimensions (0 for GPUs)
  chip_config: str          # get_topology_desc's chip_config_name
  chips_per_host: int
  gke_accelerator: str      # GKE node label value
  pjrt_platform: str        # "tpu" | "cuda"


CHIPS = {
    "v4": Chip("v4", 32 * GIB, 275e12, 2, 3, "megacore", 4, "tpu-v4-podslice", "tpu"),
    "v5e": Chip("v5e", 16 * GIB, 197e12, 1, 2, "default", 4, "tpu-v5-lite-podslice", "tpu"),
    "v5p": Chip("v5p", 95 * GIB, 459e12, 2, 3, "megacore", 4, "tpu-v5p-slice", "tpu"),
    "v6e": Chip("v6e", 32 * GIB, 918e12, 1, 2, "default", 4, "tpu-v6e-slice", "tpu"),
    "h100": Chip("h100", 80 * GIB, 989e12, 1, 0, "", 8, "nvidia-h100-80gb", "cuda"),
}


class TopologyError(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Topology:
  """A parsed topology: `num_slices` slices of `chips` chips each."""
  name: str                       # as given, e.g. "2xv5p-256"
  chip: Chip
  chips: int                      # per slice
  num_slices: int = 1

  @property
  def is_tpu(self) -> bool:
    return self.chip.pjrt_platform == "tpu"

  @property
  def num_devices(self) -> int:
    return self.chips * self.num_slices

  @property
  def accelerator_type(self) -> str:
    """One slice's name, as gcloud and GKE spell it (`v5p-256`)."""
    return f"{self.chip.name}-{self.chips * self.chip.cores_in_name}"

  @property
  def chips_per_host(self) -> int:
    # v5e-8 / v6e-8 are single hosts with 8 chips; larger slices have 4 per host.
    if self.chip.dims == 2 and self.chips <= 8:
      return self.chips
    return min(self.chip.chips_per_host, self.chips)

  @property
  def hosts_per_slice(self) -> int:
    return max(1, self.chips // self.chips_per_host)

  @property
  def shape(self) -> tuple[int, ...]:
    """The slice's physical chip grid (`4x4x8` for v5p-256)."""
    if self.chip.dims == 0:
      return (self.chips,)
    dims = [1] * self.chip.dims
    if self.chip.dims == 3 and self.chips >= 4:
      dims = [2, 2, 1]
    while math.prod(dims) < self.chips:
      # Slices grow by doubling the last of the smallest dimensions:
      # 2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, 4x4x8, ... (v4/v5p); 1x1, 1x2, 2x2, 2x4, ... (v5e/v6e).
      smallest = min(dims)
      i = max(k for k, d in enumerate(dims) if d == smallest)
      dims[i] *= 2
    return tuple(dims)

  @property
  def shape_str(self) -> str:
    return "x".join(map(str, self.shape))

  @property
  def host_bounds(self) -> tuple[int, int, int]:
    """Chips per host as an (x, y, z) box, for get_topology_desc."""
    if self.chips_per_host == 8:
      return (2, 4, 1)
    if self.chips_per_host >= 4:
      return (2, 2, 1)
    return (self.chips_per_host, 1, 1)


_PATTERN = re.compile(r"^(?:(\d+)x)?([a-z0-9]+)-(\d+)$")


def parse_topology(text: str) -> Topology:
  """`v5p-256`, `2xv5p-256`, `v5e-16`, `v6e-256`, `v4-8`, `h100-16`."""
  m = _PATTERN.match(text.strip().lower().replace("v5litepod", "v5e"))
  if not m:
    raise TopologyError(f"--topology={text}: expected e.g. v5p-256, 2xv5p-256, v5e-16, h100-8")
  slices, name, count = int(m.group(1) or 1), m.group(2), int(m.group(3))
  if name not in CHIPS:
    raise TopologyError(f"--topology={text}: unknown accelerator {name!r}; "
                        f"known: {', '.join(sorted(CHIPS))}")
  chip = CHIPS[name]
  if count % chip.cores_in_name:
    raise TopologyError(f"--topology={text}: {name} sizes count {chip.cores_in_name} per chip")
  chips = count // chip.cores_in_name
  if chip.dims and (chips & (chips - 1)):
    raise TopologyError(f"--topology={text}: {chips} chips is not a power of two")
  if slices > 1 and not chip.dims:
    raise TopologyError(f"--topology={text}: GPU hosts are written {name}-<gpus>, not <n>x")
  return Topology(text, chip, chips, slices)
