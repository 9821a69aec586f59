"""`python tests/reliability/toy_runner.py WORKDIR [key=value ...]`: the trainer on
the toy task (tests/train/train_toy_task.py) in a process of its own, so a test
can kill it, fill its disk or start two of it. Same arguments, same run: a
resumed run is the same command.

Keys: steps, save_every, async (0/1), devices (fake CPU devices), sleep_ms (a
pause per batch, so kills land at random moments), width; fill_at=N and
fill_leave=BYTES: before batch N, once checkpoint step save_every is on disk,
fill the workdir's filesystem up to BYTES of free space (a disk-full test).
"""

import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def main(argv):
  workdir, *pairs = argv
  opts = dict(steps="12", save_every="4", devices="1", sleep_ms="0", width="16", fill_at="0",
              fill_leave="0")
  opts["async"] = "1"
  opts.update(p.split("=", 1) for p in pairs)
  os.environ["JAX_PLATFORMS"] = "cpu"
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if "xla_force_host_platform_device_count" not in f]
  os.environ["XLA_FLAGS"] = " ".join(flags + [
      f"--xla_force_host_platform_device_count={opts['devices']}"])
  sys.path.insert(0, str(HERE.parent / "train"))
  import logging

  from train_toy_task import ToyData, ToyTask, toy_config

  from unified_mm.config.loading import ConfigError
  from unified_mm.train import CheckpointWriteError, TrainingDiverged, train_and_evaluate

  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format="%(asctime)s %(levelname).1s %(name)s] %(message)s", force=True)
  logging.getLogger("absl").setLevel(logging.WARNING)
  sleep = float(opts["sleep_ms"]) / 1000

  fill_at, first_save = int(opts["fill_at"]), pathlib.Path(workdir) / "checkpoints" / opts["save_every"]

  class SlowData(ToyData):
    def __next__(self):
      if sleep:
        time.sleep(sleep)
      if self.served + 1 == fill_at:
        fill_disk(first_save, pathlib.Path(workdir).parent / "filler", int(opts["fill_leave"]))
      return super().__next__()

  class SlowTask(ToyTask):
    def make_data(self, process_index, process_count, local_batch_size):
      return SlowData(self.config.seed, process_index, local_batch_size)

  config = toy_config(steps=int(opts["steps"]))
  with config.unlocked():
    config.ckpt.save_every_steps = int(opts["save_every"])
    config.ckpt.async_save = opts["async"] == "1"
    config.ckpt.max_to_keep = 3
    config.model.width = int(opts["width"])
    config.mesh.update(dict(data=-1, fsdp=1, tensor=1))
  try:
    train_and_evaluate(config, workdir, task=SlowTask(config))
  except ConfigError as e:
    print(f"toy_runner: config error: {e}", file=sys.stderr)
    return 2
  except (TrainingDiverged, CheckpointWriteError) as e:
    print(f"toy_runner: {e}", file=sys.stderr)
    return 1
  return 0


def fill_disk(wait_for: pathlib.Path, filler: pathlib.Path, leave: int) -> None:
  """Once `wait_for` is a committed checkpoint, fills its filesystem to `leave` bytes free."""
  while not (wait_for / "_CHECKPOINT_METADATA").exists():
    time.sleep(0.01)
  st = os.statvfs(filler.parent)
  with open(filler, "wb") as f:
    f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
