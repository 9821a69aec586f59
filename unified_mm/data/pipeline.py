"""The training data pipeline: any source -> packed, batched, resumable rows.

    MapDataset.source(records)[host::hosts]      this host's disjoint share
      .shuffle(seed).repeat(epochs)              lazy index permutation, reshuffled per epoch
      .map_with_index(RecordToDocument)          decode, validate, tokenise, lay out a document
      .to_iter_dataset(ReadOptions)
    FirstFitPackIterDataset                      rows of seq_len with segment ids and positions
      .batch(local_batch_size)
      .map(FillCodes)                            one codes_fn call for the batch's images
      .mp_prefetch(num_workers)                  optional worker processes

Batches are numpy dicts of int32 [B, T]: `tokens`, `targets`, `positions`,
`segment_ids`, `loss_mask`, `modality` (see sequences.py and packing.py).
`TrainIterator.get_state()` is JSON; restoring it (with the same worker count)
yields byte-identical batches.
"""

from __future__ import annotations

import functools

import grain
import ml_collections
import numpy as np

from unified_mm.data.batch_codes import FillCodes, stack_rows
from unified_mm.data.config import validate_data_config
from unified_mm.data.counted_grain import CountedGrainIterator
from unified_mm.data.documents import CodesFn, RecordToDocument
from unified_mm.data.packing import pack_documents
from unified_mm.data.sources.registry import make_source
from unified_mm.data.text_tokenizer import TextTokenizer, load_tokenizer, train_tokenizer
from unified_mm.data.vocab import Vocab


@functools.lru_cache(maxsize=4)
def _shapes_tokenizer(vocab_size: int) -> TextTokenizer:
  # The corpus is fixed (not taken from the data config): a run and its later
  # evaluation with, say, more objects per scene must get the same ids. The world
  # writes lower case, single-spaced: folding costs its corpus nothing (the same
  # pieces, the same ids) and reads "A Red circle" as "a red circle".
  from unified_mm.data.sources.shapes_source import shapes_corpus  # noqa: PLC0415
  return train_tokenizer(shapes_corpus(), vocab_size, fold_case=True)


def load_or_train_tokenizer(data: ml_collections.ConfigDict) -> TextTokenizer:
  """`data.tokenizer_dir` if set, else one trained on the fixed shapes corpus (~2 s, cached)."""
  if data.tokenizer_dir:
    return load_tokenizer(data.tokenizer_dir)
  return _shapes_tokenizer(data.text_vocab_size)


def _ensure_absl_flags_parsed() -> None:
  """Grain's spawned workers read absl flags; under pytest or a plain script none are parsed."""
  from absl import flags  # noqa: PLC0415
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_dataset(data: ml_collections.ConfigDict, *, vocab: Vocab, tokenizer: TextTokenizer,
                 codes_fn: CodesFn, process_index: int, process_count: int,
                 local_batch_size: int, seq_len: int, drop_remainder: bool = True,
                 source=None) -> grain.IterDataset:
  """The Grain pipeline; `source` overrides the one `data.source` names."""
  validate_data_config(data, check_source=source is None)
  if tokenizer.vocab_size > vocab.text_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids, vocab.text_size is "
                     f"{vocab.text_size}")
  source = make_source(data) if source is None else source
  ds = grain.MapDataset.source(source)[process_index::process_count]
  ds = ds.shuffle(seed=data.seed).repeat(data.num_epochs or None)
  ds = ds.map_with_index(RecordToDocument(
      vocab=vocab, tokenizer=tokenizer, codes_fn=codes_fn, seed=data.seed, seq_len=seq_len,
      image_size=data.image_size, resize=data.resize, doc_ratios=dict(data.doc_ratios),
      caption_dropout=data.caption_dropout, loss_on_prompt=data.loss_on_prompt,
      layout_bins=int(data.get("layout_bins", 0)), layout_prob=float(data.get("layout_prob", 0.0)),
      plain_description=bool(data.get("plain_description", False)),
      max_caption_chars=data.max_caption_chars, stream=process_index))
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=data.read_threads,
                                            prefetch_buffer_size=data.prefetch_buffer_size))
  it = pack_documents(it, vocab=vocab, seq_len=seq_len, seed=data.seed,
                      num_bins=local_batch_size * data.num_bins_factor)
  it = it.batch(local_batch_size, drop_remainder=drop_remainder, batch_fn=stack_rows)
  it = it.map(FillCodes(codes_fn, vocab.image_offset))
  if data.num_workers > 0:
    _ensure_absl_flags_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.num_workers))
  return it


class TrainIterator(CountedGrainIterator):
  """Host-local batches with a JSON state; satisfies tasks.base.DataIterator."""

  def __next__(self) -> dict[str, np.ndarray]:
    batch = dict(next(self._it))
    self._counts += batch.pop("counts").sum(axis=0)
    return batch

  def __enter__(self) -> TrainIterator:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def make_train_iterator(data: ml_collections.ConfigDict, vocab: Vocab, codes_fn: CodesFn,
                        process_index: int | None, process_count: int | None,
                        local_batch_size: int, seq_len: int | None = None, *,
                        tokenizer: TextTokenizer | None = None, source=None,
                        drop_remainder: bool = True) -> TrainIterator:
  """This host's training batches: int32 [local_batch_size, seq_len] numpy dicts.

  `codes_fn(images uint8 [B, H, W, 3]) -> int codes [B, h, w]` (the image
  tokenizer, or `StandInCodes`); codes are offset into `vocab`'s image range.
  `process_index/count` None: this JAX process's shard (`ShardByJaxProcess`).
  `seq_len` defaults to `data.seq_len`. Call `close()` when done (worker processes).
  """
  if process_index is None or process_count is None:
    shard = grain.sharding.ShardByJaxProcess()
    process_index, process_count = shard.shard_index, shard.shard_count
  tokenizer = tokenizer or load_or_train_tokenizer(data)
  ds = make_dataset(data, vocab=vocab, tokenizer=tokenizer, codes_fn=codes_fn,
                    process_index=process_index, process_count=process_count,
                    local_batch_size=local_batch_size, seq_len=seq_len or data.seq_len,
                    drop_remainder=drop_remainder, source=source)
  return TrainIterator(ds)
