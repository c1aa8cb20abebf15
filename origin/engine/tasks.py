"""Per-task pipelines: pre-processing (tokenize / validate), one batched ORT call, post-processing.

A pipeline turns one request into *items* (one per text input, query-document pair, image, or
tensor request), the batcher coalesces items from many requests, and `run_batch` (called in a
worker thread) returns one result per item. Tokenization happens before queueing so the batcher
knows each item's cost. The image pipelines live in `origin.engine.vision`; `origin.engine.
pipelines` maps every task to its pipeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from origin.engine.onnx_session import (
    NUMPY_TO_OIP,
    OIP_TO_NUMPY,
    TensorInfo,
    session_inputs,
    session_outputs,
)
from origin.repository.config import ModelConfig, ModelFolderError


class InputError(ValueError):
    """A client input the model cannot take (answered 422); `index` names the offending input."""

    def __init__(self, message: str, *, index: int | None = None, field: str = "input") -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.field = field


@dataclass(frozen=True, slots=True)
class TextItem:
    """One tokenized input: token ids (and type ids), its length is the batching cost."""

    ids: list[int]
    type_ids: list[int]

    @property
    def cost(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class TensorItem:
    """One tensor request: named arrays sharing a leading batch dimension of `rows`."""

    arrays: dict[str, np.ndarray]
    rows: int
    key: tuple[Any, ...] | None

    @property
    def cost(self) -> int:
        return self.rows


# ----------------------------------------------------------------------------- text pipelines


_VOCAB_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def load_tokenizer(folder: Path) -> Any:
    """Load the folder's Hugging Face fast tokenizer offline (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    # Without vocabulary files transformers would build an empty tokenizer: refuse that.
    if not any((folder / f).is_file() for f in _VOCAB_FILES):
        raise ModelFolderError(
            folder / "tokenizer.json",
            None,
            f"no tokenizer files (one of {', '.join(_VOCAB_FILES)}) in the version folder",
        )
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except Exception as exc:  # transformers raises many types for broken folders
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(
            folder / "tokenizer.json", None, f"cannot load tokenizer: {msg}"
        ) from None
    if not getattr(tok, "is_fast", False):
        raise ModelFolderError(folder / "tokenizer.json", None, "a fast tokenizer is required")
    return tok


def _read_hf_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(path, None, f"not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


# A token of a real tokenizer covers at most a few characters of ordinary text (English
# WordPiece: about 4-5). Inputs longer than max_length x this are cut before tokenizing, and the
# cut is proven harmless for each input (see TextPipeline._encode_long).
CHARS_PER_TOKEN_BOUND = 16


def resolve_labels(
    config: ModelConfig, hf_config: dict[str, Any], folder: Path, n: int
) -> list[str]:
    """Class labels: model.yaml `labels`, else config.json id2label, else LABEL_i."""
    if config.labels is not None:
        if len(config.labels) != n:
            raise ModelFolderError(
                folder.parent / "model.yaml",
                "labels",
                f"{len(config.labels)} labels given but the model has {n} classes",
            )
        return list(config.labels)
    id2label = hf_config.get("id2label")
    if isinstance(id2label, dict) and len(id2label) == n:
        try:
            return [str(id2label[k]) for k in sorted(id2label, key=int)]
        except (TypeError, ValueError):
            pass
    return [f"LABEL_{i}" for i in range(n)]


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a row of zeros stays zeros)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.clip(norms, 1e-12, None)


def softmax(logits: np.ndarray) -> list[np.ndarray]:
    """Row-wise softmax (float64 inside), one float32 vector per row."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return list((exp / exp.sum(axis=1, keepdims=True)).astype(np.float32))


class _SessionPipeline:
    """What every pipeline keeps: its config, the ORT session and the graph's declared tensors."""

    keyed_batches = False  # True: only items with equal `key`s share a batch

    def __init__(self, config: ModelConfig, session: ort.InferenceSession, folder: Path) -> None:
        self.config = config
        self.session = session
        self.folder = folder
        self.inputs = session_inputs(session)
        self.outputs = session_outputs(session)

    def _preferred_outputs(self) -> Sequence[str]:
        return ()

    def _pick_output(self) -> str:
        """model.yaml's `output_name`, else the first of the task's usual outputs, else the
        graph's first output."""
        names = [o.name for o in self.outputs]
        if self.config.output_name:
            if self.config.output_name not in names:
                raise ModelFolderError(
                    self.folder / "model.onnx",
                    "output_name",
                    f"no output {self.config.output_name!r}; the graph has {names}",
                )
            return self.config.output_name
        for name in self._preferred_outputs():
            if name in names:
                return name
        return names[0]


class TextPipeline(_SessionPipeline):
    """Shared tokenization and padding for the text tasks."""

    task = "text"
    padded_cost = True

    def __init__(self, config: ModelConfig, session: ort.InferenceSession, folder: Path) -> None:
        super().__init__(config, session, folder)
        self.hf_config = _read_hf_config(folder)
        names = {i.name for i in self.inputs}
        for required in ("input_ids", "attention_mask"):
            if required not in names:
                raise ModelFolderError(
                    folder / "model.onnx",
                    "inputs",
                    f"a {config.task} model needs an input named {required!r}; "
                    f"the graph has {sorted(names)}",
                )
        unknown = names - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise ModelFolderError(
                folder / "model.onnx", "inputs", f"unexpected text-model inputs {sorted(unknown)}"
            )
        self.wants_type_ids = "token_type_ids" in names
        tok = load_tokenizer(folder)
        self.hf_tokenizer = tok
        self.max_length = self._effective_max_length(tok)
        backend = tok.backend_tokenizer.__class__.from_str(tok.backend_tokenizer.to_str())
        backend.no_padding()
        backend.no_truncation()
        self.raw_tokenizer = backend  # no truncation, no padding: for counting and cut checks
        backend = backend.__class__.from_str(backend.to_str())
        if config.truncation == "truncate":
            backend.enable_truncation(self.max_length)
        self.tokenizer = backend
        self.char_budget = self.max_length * CHARS_PER_TOKEN_BOUND
        self.pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else 0
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self.output_name = self._pick_output()

    def _effective_max_length(self, tok: Any) -> int:
        limit = self.config.max_sequence_length
        model_max = getattr(tok, "model_max_length", None)
        if isinstance(model_max, int) and 0 < model_max < 1_000_000:
            limit = min(limit, model_max)
        positions = self.hf_config.get("max_position_embeddings")
        if isinstance(positions, int) and positions > 0:
            limit = min(limit, positions)
        return limit

    # -- pre-processing (event loop or a helper thread; the Rust tokenizer releases the GIL)
    def tokenize(self, texts: Sequence[str]) -> list[TextItem]:
        """Tokenize; in `reject` mode an input over the limit raises InputError.

        Inputs longer than `char_budget` characters are cut first (`_encode_long`), with the
        same tokens as a result: a 100 000-character input costs what its first tokens cost.
        """
        budget = self.char_budget
        encodings = self.tokenizer.encode_batch([t if len(t) <= budget else "" for t in texts])
        for i, text in enumerate(texts):
            if len(text) > budget:
                encodings[i] = self.tokenizer.post_process(self._encode_long(text))
        return [self._item(index, enc) for index, enc in enumerate(encodings)]

    def _item(self, index: int, enc: Any) -> TextItem:
        ids = enc.ids
        if len(ids) > self.max_length:
            raise InputError(
                f"input {index} has {len(ids)} tokens; this model accepts at most "
                f"{self.max_length} (truncation: reject)",
                index=index,
            )
        return TextItem(ids, enc.type_ids)

    def _encode_long(self, text: str) -> Any:
        """Raw tokens (no special tokens, no truncation) of `text`, or of a prefix of it whose
        tokens start with the same `max_length` tokens as the whole text's.

        A prefix cut at any character keeps every pre-token (word) but the last exactly as in
        the whole text: pre-tokenizers split on whitespace and punctuation, and normalizers act
        on single characters. So once the complete words of the prefix give `max_length` tokens
        or more, truncating the prefix or the whole text gives the same tokens. A prefix that
        falls short (long runs of spaces, unsplittable words) is doubled until it holds enough,
        or is the whole text.
        """
        limit = self.char_budget
        while limit < len(text):
            raw = self.raw_tokenizer.encode(text[:limit], add_special_tokens=False)
            words = raw.word_ids
            if words:
                last = words[-1]
                complete = sum(1 for w in words if w != last)
                if complete >= self.max_length:
                    return raw
            limit *= 2
        return self.raw_tokenizer.encode(text, add_special_tokens=False)

    def feeds(self, items: Sequence[TextItem]) -> dict[str, np.ndarray]:
        """Pad to the longest item in the batch."""
        width = max(item.cost for item in items)
        ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64) if self.wants_type_ids else None
        for row, item in enumerate(items):
            n = item.cost
            ids[row, :n] = item.ids
            mask[row, :n] = 1
            if types is not None:
                types[row, :n] = item.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            feeds["token_type_ids"] = types
        return feeds

    def forward(
        self, items: Sequence[TextItem], run_options: ort.RunOptions | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        feeds = self.feeds(items)
        (out,) = self.session.run([self.output_name], feeds, run_options)
        return out, feeds["attention_mask"]

    def check_vocab(self) -> None:
        """Fail if the tokenizer can emit ids the model's embedding table does not have."""
        top = self.vocab_size - 1
        item = TextItem([top], [0])
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the expected failure is reported, not logged by ORT
        try:
            self.forward([item], quiet)
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0][:300]
            raise ModelFolderError(
                self.folder / "tokenizer.json",
                "vocab_size",
                f"the tokenizer has {self.vocab_size} tokens but the model rejects token id "
                f"{top} ({msg}); tokenizer and model do not match",
            ) from None

    def warm_up(self) -> None:
        self.check_vocab()
        self.run_batch(self.tokenize(["warm up", "a slightly longer warm-up sentence for ORT"]))

    def run_batch(self, items: Sequence[TextItem]) -> list[np.ndarray]:
        raise NotImplementedError


class EmbeddingsPipeline(TextPipeline):
    """Mean or CLS pooling over token states, optional L2 normalization."""

    task = "embeddings"
    width = 0  # the embedding size, measured at warm-up

    def _preferred_outputs(self) -> Sequence[str]:
        return ("last_hidden_state", "sentence_embedding", "token_embeddings")

    def warm_up(self) -> None:
        super().warm_up()
        self.width = len(self.run_batch(self.tokenize(["warm up"]))[0])
        too_big = [d for d in self.config.matryoshka_dimensions or [] if d > self.width]
        if too_big:
            raise ModelFolderError(
                self.folder.parent / "model.yaml",
                "matryoshka_dimensions",
                f"{too_big} exceed the model's {self.width}-dimensional embeddings",
            )

    def run_batch(self, items: Sequence[TextItem]) -> list[np.ndarray]:
        out, mask = self.forward(items)
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 3:
            if self.config.pooling == "cls":
                pooled = out[:, 0, :]
            else:
                m = mask[..., None].astype(np.float32)
                pooled = (out * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        elif out.ndim == 2:
            pooled = out
        else:
            raise ValueError(f"embeddings output has rank {out.ndim}; expected 2 or 3")
        if self.config.normalize:
            pooled = l2_normalize(pooled)
        pooled = np.ascontiguousarray(pooled, dtype=np.float32)
        return list(pooled)

    @property
    def dimensions(self) -> int:
        for o in self.outputs:
            if o.name == self.output_name and o.shape and o.shape[-1] > 0:
                return o.shape[-1]
        return -1


class Classifier(_SessionPipeline):
    """What the text and image classification tasks share: softmax over the `logits` output,
    and labels from model.yaml, else config.json id2label, else LABEL_i, read at warm-up."""

    hf_config: dict[str, Any]
    output_name: str

    def __init__(self, config: ModelConfig, session: ort.InferenceSession, folder: Path) -> None:
        super().__init__(config, session, folder)
        self.labels: list[str] = []

    def _preferred_outputs(self) -> Sequence[str]:
        return ("logits",)

    def _learn_labels(self, out: np.ndarray) -> None:
        """The labels for the classes of `out`, a warm-up batch's output ([n, classes])."""
        if out.ndim != 2:
            raise ModelFolderError(
                self.folder / "model.onnx",
                "output_name",
                f"classification output {self.output_name!r} has rank {out.ndim}; expected 2",
            )
        self.labels = resolve_labels(self.config, self.hf_config, self.folder, out.shape[1])


class ClassificationPipeline(Classifier, TextPipeline):
    """Text classification: softmax over logits, one label per class."""

    task = "text-classification"

    def warm_up(self) -> None:
        self.check_vocab()
        out, _ = self.forward(self.tokenize(["warm up"]))
        self._learn_labels(out)
        self.run_batch(self.tokenize(["warm up", "another warm-up sentence"]))

    def run_batch(self, items: Sequence[TextItem]) -> list[np.ndarray]:
        logits, _ = self.forward(items)
        return softmax(logits)


class RerankPipeline(TextPipeline):
    """A cross-encoder: one (query, document) pair per item, one relevance score out.

    Pairs are tokenized as the model was trained (`[CLS] query [SEP] document [SEP]`, truncated
    longest-first to `max_sequence_length`, as Hugging Face tokenizers and sentence-transformers'
    CrossEncoder do). A one-logit head gives `sigmoid(logit)` (or the raw logit with
    `score: raw`); a two-class head gives the second class's softmax probability.
    """

    task = "rerank"

    def _preferred_outputs(self) -> Sequence[str]:
        return ("logits",)

    def tokenize_pairs(self, query: str, documents: Sequence[str]) -> list[TextItem]:
        """One item per document; long documents are cut as in `tokenize`."""
        q = self.raw_tokenizer.encode(query, add_special_tokens=False)
        # The cut is exact only when the query itself fits (see `_encode_long`): longest-first
        # truncation then depends on the document only through its first max_length tokens.
        cut = len(q.ids) <= self.max_length
        items = []
        for index, doc in enumerate(documents):
            if cut and len(doc) > self.char_budget:
                d = self._encode_long(doc)
            else:
                d = self.raw_tokenizer.encode(doc, add_special_tokens=False)
            items.append(self._item(index, self.tokenizer.post_process(q, d)))
        return items

    def warm_up(self) -> None:
        self.check_vocab()
        out, _ = self.forward(self.tokenize_pairs("warm up", ["a document"]))
        if out.ndim != 2 or out.shape[1] not in (1, 2):
            raise ModelFolderError(
                self.folder / "model.onnx",
                "output_name",
                f"rerank output {self.output_name!r} has shape {list(out.shape)}; expected "
                "[n, 1] (one relevance logit) or [n, 2]",
            )
        self.run_batch(self.tokenize_pairs("warm up", ["one document", "another document"]))

    def run_batch(self, items: Sequence[TextItem]) -> list[float]:
        logits, _ = self.forward(items)
        logits = np.asarray(logits, dtype=np.float64)
        if logits.shape[1] == 2:
            return [float(p[1]) for p in softmax(logits)]
        raw = logits[:, 0]
        if self.config.score == "sigmoid":
            raw = 1.0 / (1.0 + np.exp(-raw))
        return [float(x) for x in raw]


# ----------------------------------------------------------------------------- tensor pipeline


class TensorPipeline(_SessionPipeline):
    """Any ONNX graph: raw named numeric tensors in, all (or selected) outputs out."""

    task = "tensor"
    padded_cost = False
    keyed_batches = True

    def __init__(self, config: ModelConfig, session: ort.InferenceSession, folder: Path) -> None:
        super().__init__(config, session, folder)
        by_name = {i.name: i for i in self.inputs}
        out_names = {o.name for o in self.outputs}
        for spec, known, field in (
            *((s, by_name, "inputs") for s in config.inputs or []),
            *((s, out_names, "outputs") for s in config.outputs or []),
        ):
            if spec.name not in known:
                raise ModelFolderError(
                    folder.parent / "model.yaml",
                    field,
                    f"declared tensor {spec.name!r} is not in the graph ({sorted(known)})",
                )
        # Requests are concatenated along axis 0 only if every input and output allows it.
        self.batchable = all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))

    def prepare(self, tensors: dict[str, tuple[str, list[int], Any]]) -> TensorItem:
        """Validate OIP tensors {name: (datatype, shape, data)} against the graph's inputs."""
        expected = {i.name: i for i in self.inputs}
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise InputError(f"missing input tensor(s) {missing}", field="inputs")
        extra = sorted(set(tensors) - set(expected))
        if extra:
            raise InputError(
                f"unknown input tensor(s) {extra}; the model takes {sorted(expected)}",
                field="inputs",
            )
        arrays: dict[str, np.ndarray] = {}
        rows: set[int] = set()
        for name, (datatype, shape, data) in tensors.items():
            info = expected[name]
            if datatype != info.datatype:
                raise InputError(
                    f"input {name!r} must have datatype {info.datatype}, got {datatype}",
                    field=name,
                )
            arrays[name] = _to_array(name, info, shape, data)
            if arrays[name].ndim:
                rows.add(arrays[name].shape[0])
        if len(rows) > 1:
            raise InputError(f"inputs disagree on the batch dimension: {sorted(rows)}")
        n_rows = next(iter(rows)) if rows else 1
        if self.batchable:
            key: tuple[Any, ...] = tuple((n, a.shape[1:]) for n, a in sorted(arrays.items()))
        else:
            key = ("solo", id(arrays))
        return TensorItem(arrays, n_rows, key)

    def warm_up(self) -> None:
        feeds = {}
        for info in self.inputs:
            shape = [d if d > 0 else 1 for d in info.shape]
            feeds[info.name] = np.zeros(shape, dtype=info.numpy_dtype)
        self.session.run(None, feeds)

    def run_batch(self, items: Sequence[TensorItem]) -> list[dict[str, np.ndarray]]:
        names = [o.name for o in self.outputs]
        if len(items) == 1:
            return [dict(zip(names, self.session.run(names, items[0].arrays), strict=True))]
        feeds = {k: np.concatenate([it.arrays[k] for it in items]) for k in items[0].arrays}
        outs = self.session.run(names, feeds)
        bounds = np.cumsum([it.rows for it in items])[:-1]
        split = [np.split(np.asarray(o), bounds) for o in outs]
        return [{n: split[j][i] for j, n in enumerate(names)} for i in range(len(items))]


def _to_array(name: str, info: TensorInfo, shape: list[int], data: Any) -> np.ndarray:
    if any((not isinstance(d, int)) or d < 0 for d in shape):
        raise InputError(f"input {name!r}: shape must be non-negative integers", field=name)
    if len(shape) != len(info.shape):
        raise InputError(
            f"input {name!r} must have rank {len(info.shape)} (shape {list(info.shape)}), "
            f"got shape {shape}",
            field=name,
        )
    for got, want in zip(shape, info.shape, strict=True):
        if want > 0 and got != want:
            raise InputError(
                f"input {name!r} must have shape {list(info.shape)} (-1 = any), got {shape}",
                field=name,
            )
    dtype = OIP_TO_NUMPY[info.datatype]
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"input {name!r}: data is not valid {info.datatype}", field=name) from None
    if arr.size != math.prod(shape):
        raise InputError(f"input {name!r}: {arr.size} values do not fill shape {shape}", field=name)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"input {name!r}: NaN and Infinity are not accepted", field=name)
    return arr.reshape(shape)


def oip_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """Numpy array -> OIP output tensor (flattened row-major data)."""
    array = np.asarray(array)
    if array.dtype.kind in "OUS":
        data = [x.decode() if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]
        return {"name": name, "datatype": "BYTES", "shape": list(array.shape), "data": data}
    datatype = NUMPY_TO_OIP.get(array.dtype, "FP32")
    if datatype == "FP32" and array.dtype != np.float32:
        array = array.astype(np.float32)
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": array.reshape(-1),
    }
