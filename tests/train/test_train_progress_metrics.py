"""Progress output (terminal bar vs log lines) and the metric writer's files."""

import io
import json
import logging

from unified_mm.train.metrics import MetricWriter, read_metrics_rows
from unified_mm.train.progress import Progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_progress_draws_a_bar_on_a_terminal():
  out = _Terminal()
  p = Progress(0, 10, stream=out)
  p.logged(5, 1.25, 1000.0)
  p.update(5)
  text = out.getvalue()
  assert text.startswith("\r[") and "5/10" in text and "loss 1.2500" in text and "ETA" in text


def test_progress_logs_plain_lines_elsewhere(caplog):
  caplog.set_level(logging.INFO, "unified_mm.train")
  out = io.StringIO()
  p = Progress(0, 10, stream=out)
  p.update(5)
  p.logged(5, 1.25, 1000.0)
  assert out.getvalue() == ""
  assert "step 5/10 loss 1.2500 1000 tok/s ETA" in caplog.text


def test_metric_writer_keeps_jsonl_parseable_with_nan(tmp_path):
  w = MetricWriter(tmp_path, enabled=True)
  w.write(1, {"train/loss": 2.0, "train/grad_norm": float("nan")})
  w.close()
  row = json.loads((tmp_path / "metrics.jsonl").read_text())
  assert row == {"step": 1, "train/loss": 2.0, "train/grad_norm": "nan"}
  assert any((tmp_path / "tb").iterdir())


def test_metric_rows_skip_a_line_cut_by_a_kill_and_one_still_being_written(tmp_path):
  w = MetricWriter(tmp_path, enabled=True)
  w.write(1, {"train/loss": 2.0})
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 2, "train/lo')  # killed mid-write
  assert [r["step"] for r in read_metrics_rows(tmp_path)] == [1]
  w = MetricWriter(tmp_path, enabled=True)  # the resumed run appends after the fragment
  w.write(2, {"train/loss": 1.5})
  w.close()
  assert [r["step"] for r in read_metrics_rows(tmp_path)] == [1, 2]
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 3}')  # complete JSON, but the line is not ended yet
  assert [r["step"] for r in read_metrics_rows(tmp_path)] == [1, 2]


def test_metric_writer_is_silent_off_process_0(tmp_path):
  w = MetricWriter(tmp_path / "w", enabled=False)
  w.write(1, {"train/loss": 2.0})
  w.close()
  assert not (tmp_path / "w").exists()
