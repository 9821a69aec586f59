"""`umm` on what a new user types (issue #21, item 8).

A mistake (no such run root, a root missing a stage, no prompt, a prompt file
that is not UTF-8, a file that is not an image) is one line on stderr
naming the input, exit code 2, never a traceback, and is found before any
model loads: none of these needs a trained stage. What can still be made (a
10,000-character prompt, unknown words, an empty prompt, an --init-image or
caption image of another size or mode) is made, with notes; those run on a tiny trained root
(tokenizer and transformer, ~45 s to train) and are marked slow.
"""

import importlib
import importlib.metadata
import pathlib
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stage_factories import train_tiny_ar_root
from unified_mm.cli import commands

REPO = pathlib.Path(__file__).resolve().parents[2]
UMM = [sys.executable, "-m", "unified_mm.cli.main"]
SWEEP = "experiments/sweeps/shapes_sampling.py"


def _umm(*args, env, timeout=300):
  argv = [a if isinstance(a, bytes) else str(a) for a in args]
  return subprocess.run([*UMM, *argv], capture_output=True, text=True, errors="replace",
                        env=env, cwd=REPO, timeout=timeout)


def _one_line_error(r, *words):
  """The failure a user should see: exit 2, one stderr line holding `words`."""
  assert "Traceback" not in r.stderr, r.stderr[-3000:]
  assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1, r.stderr
  for word in words:
    assert str(word) in lines[0], (word, lines[0])
  return lines[0]


@pytest.fixture
def env(subprocess_env):
  return subprocess_env(1)


@pytest.fixture
def partial_root(tmp_path):
  """A root whose tokenizer/ and ar/ look trained (a committed step) and has no
  renderer/: the stage check reads directories only, so nothing needs training."""
  for name in ("tokenizer", "ar"):
    (tmp_path / "root" / name / "checkpoints" / "2").mkdir(parents=True)
  return tmp_path / "root"


# -- umm --help / --version / unknown commands --------------------------------

def test_help_lists_every_command_with_its_description(env):
  r = _umm("--help", env=env)
  assert r.returncode == 0, r.stderr
  names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
  assert len(names) >= 9
  for name in names:
    help_line = importlib.import_module(f"unified_mm.cli.commands.{name}").HELP
    assert any(line.split() and line.split()[0] == name and help_line in line
               for line in r.stdout.splitlines()), (name, r.stdout)


def test_help_imports_no_jax(env):
  """Every command module is imported for its HELP line: none may pull in JAX."""
  code = ("import sys; from unified_mm.cli.main import main; assert main(['--help']) == 0; "
          "assert 'jax' not in sys.modules, 'umm --help imported jax'")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                     cwd=REPO, timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]


def test_version(env):
  r = _umm("--version", env=env)
  assert r.returncode == 0, r.stderr
  assert r.stdout.strip() == f"umm (unified_mm) {importlib.metadata.version('unified_mm')}"


def test_unknown_command_suggests_the_near_one(env):
  _one_line_error(_umm("generat", env=env), "unknown command 'generat'", "'generate'",
                  "umm --help")


# -- run roots ----------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("generate", "--prompt", "a red circle", "--out", "{tmp}/out.png"),
    ("caption", "{image}"),
    ("eval", "--sweep", SWEEP, "--out", "{tmp}/eval"),
], ids=lambda c: c[0])
def test_workdir_that_does_not_exist(command, tmp_path, env):
  image = tmp_path / "in.png"
  Image.new("RGB", (64, 64)).save(image)
  args = [a.format(tmp=tmp_path, image=image) for a in command]
  missing = tmp_path / "nonexistent"
  _one_line_error(_umm(args[0], "--workdir", missing, *args[1:], env=env),
                  f"{missing}: no such directory", "tokenizer/", f"umm demo --workdir {missing}")
  assert not (tmp_path / "eval").exists()  # nothing made


def test_root_missing_a_stage_names_it_and_what_trains_it(partial_root, tmp_path, env):
  line = _one_line_error(
      _umm("generate", "--workdir", partial_root, "--prompt", "a red circle",
           "--out", tmp_path / "out/a.png", env=env),
      "no renderer/ stage", f"umm demo --workdir {partial_root}",
      "umm train --config experiments/shapes.py:renderer_layout",
      f"--workdir {partial_root / 'renderer'}")
  assert "Traceback" not in line and not (tmp_path / "out").exists()


def test_stage_without_a_complete_checkpoint(partial_root, tmp_path, env):
  """A stage whose training never committed a step (Orbax's temporary directory only)."""
  ckpts = partial_root / "ar" / "checkpoints"
  (ckpts / "2").rename(ckpts / "2.orbax-checkpoint-tmp-1700000000")
  image = tmp_path / "in.png"
  Image.new("RGB", (64, 64)).save(image)
  _one_line_error(_umm("caption", "--workdir", partial_root, image, env=env),
                  "ar/ has no complete checkpoint", "umm train --config experiments/shapes.py:ar")


def test_eval_checkpoints_not_steps(partial_root, tmp_path, env):
  _one_line_error(_umm("eval", "--workdir", partial_root, "--sweep", SWEEP, "--out", tmp_path / "e",
                       "--checkpoints", "last", env=env), "--checkpoints last", "latest, all")


def test_eval_malformed_mesh(partial_root, tmp_path, env):
  _one_line_error(_umm("eval", "--workdir", partial_root, "--sweep", SWEEP, "--out", tmp_path / "e",
                       "--mesh", "fsdp=four", env=env), "--mesh")
  assert not (tmp_path / "e").exists()  # refused before the sweep starts


@pytest.mark.parametrize("counts", ["1,2", "2,30", "two"])
def test_demo_binding_counts_fail_before_training(counts, tmp_path, env):
  _one_line_error(_umm("demo", "--workdir", tmp_path / "root", "--binding-counts", counts, env=env),
                  f"--binding-counts {counts}", "2 to 25")
  assert not (tmp_path / "root").exists()  # refused before the first stage


# -- prompts ------------------------------------------------------------------

def test_no_prompt(partial_root, tmp_path, env):
  _one_line_error(_umm("generate", "--workdir", partial_root, "--out", tmp_path / "a.png",
                       "--preview", env=env), "no prompt", "--prompt TEXT", "--prompt-file")


@pytest.mark.parametrize("prompt", ["", "   "], ids=["empty", "blank"])
def test_empty_prompt_is_asked_for_not_refused(prompt, tmp_path, env):
  """`--prompt ""` draws an unconditional sample, with a note (tests/generate/
  test_generate_planned.py draws one): its checks pass and the root is next."""
  _one_line_error(_umm("generate", "--workdir", tmp_path / "nonexistent", "--prompt", prompt,
                       "--out", tmp_path / "a.png", env=env), "no such directory")


def test_prompt_file_not_utf8(partial_root, tmp_path, env):
  prompts = tmp_path / "prompts.txt"
  prompts.write_bytes("a red circle\na blue caf\u00e9 star\n".encode("latin-1"))
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt-file", prompts,
                       "--out", tmp_path / "out", "--preview", env=env),
                  f"--prompt-file {prompts}", "not UTF-8", "0xe9 on line 2")


@pytest.mark.parametrize("content", [None, b"\n  \n"], ids=["missing", "no-prompts"])
def test_prompt_file_missing_or_empty(content, partial_root, tmp_path, env):
  prompts = tmp_path / "prompts.txt"
  if content is not None:
    prompts.write_bytes(content)
  problem = "No such file" if content is None else "no prompts"
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt-file", prompts,
                       "--out", tmp_path / "out", "--preview", env=env),
                  f"--prompt-file {prompts}: {problem}")


def test_prompt_argument_not_utf8(partial_root, tmp_path, env):
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt", b"a caf\xe9 circle",
                       "--out", tmp_path / "a.png", "--preview", env=env),
                  "--prompt is not UTF-8")


# -- images and outputs -------------------------------------------------------

def test_init_image_not_an_image(partial_root, tmp_path, env):
  fake = tmp_path / "photo.png"
  fake.write_text("not a png")
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt", "make it blue",
                       "--init-image", fake, "--out", tmp_path / "a.png", "--preview", env=env),
                  f"--init-image {fake}: not an image")
  _one_line_error(_umm("caption", "--workdir", partial_root, tmp_path / "none.png", env=env),
                  f"image {tmp_path / 'none.png'}: No such file")


def test_out_that_cannot_be_an_image(partial_root, tmp_path, env):
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt", "a red circle",
                       "--out", tmp_path, "--preview", env=env), f"--out {tmp_path}: a directory")
  _one_line_error(_umm("generate", "--workdir", partial_root, "--prompt", "a red circle",
                       "--out", tmp_path / "picture", "--preview", env=env), "ending in .png")


def test_zero_batch_is_an_argument_error(partial_root, tmp_path, env):
  r = _umm("generate", "--workdir", partial_root, "--prompt", "a red circle",
           "--out", tmp_path / "a.png", "--batch-size", "0", env=env)
  assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert "--batch-size: 0 is not >= 1" in r.stderr.strip().splitlines()[-1]


# -- what can be made is made, with notes (a tiny trained root) ---------------

@pytest.fixture(scope="module")
def trained_root(tmp_path_factory):
  """tokenizer/ and ar/, briefly trained (no renderer/: every run here is --preview)."""
  import jax
  return train_tiny_ar_root(tmp_path_factory.mktemp("root"), jax.devices()[:1])


def _notes(r) -> list[str]:
  assert "Traceback" not in r.stderr, r.stderr[-3000:]
  assert r.returncode == 0, r.stderr[-3000:]
  return [line for line in r.stderr.splitlines() if line.startswith("note: ")]


@pytest.mark.slow
def test_long_prompt_and_unknown_words_are_drawn_with_notes(trained_root, tmp_path, env):
  prompts = tmp_path / "prompts.txt"
  long_prompt = ("a red circle left of a blue square " * 300)[:10_000]
  prompts.write_text(f"{long_prompt}\na zorblax circle\n")
  r = _umm("generate", "--workdir", trained_root, "--prompt-file", prompts,
           "--out", tmp_path / "out", "--preview", "--batch-size", 2, env=env)
  notes = _notes(r)
  assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["000.png", "001.png"]
  assert np.asarray(Image.open(tmp_path / "out/000.png")).shape == (64, 64, 3)
  assert any("(10,000 characters)" in n and "more than any training prompt" in n for n in notes)
  assert any("zorblax" in n and "never seen" in n for n in notes)
  # A note quotes the prompt cut short: lines stay readable however long the prompt.
  assert max(len(n) for n in notes) < 400, max(notes, key=len)


@pytest.mark.slow
def test_init_image_of_another_size_and_mode_is_converted(trained_root, tmp_path, env):
  source = tmp_path / "rgba.png"
  Image.new("RGBA", (100, 80), (255, 0, 0, 128)).save(source)
  r = _umm("generate", "--workdir", trained_root, "--prompt", "make the circle blue",
           "--init-image", source, "--out", tmp_path / "edit.png", "--preview",
           "--batch-size", 1, env=env)
  notes = _notes(r)
  assert np.asarray(Image.open(tmp_path / "edit.png")).shape == (64, 64, 3)
  assert any("RGBA converted to RGB" in n and "100x80 resized to 64x64" in n for n in notes), notes


@pytest.mark.slow
def test_caption_of_another_size_and_mode(trained_root, tmp_path, env):
  gray = tmp_path / "gray.png"
  Image.new("L", (40, 40), 200).save(gray)
  r = _umm("caption", "--workdir", trained_root, gray, env=env)
  notes = _notes(r)
  assert r.stdout.startswith(f"{gray}\t"), r.stdout
  assert any("L converted to RGB" in n and "40x40 resized to 64x64" in n for n in notes), notes
