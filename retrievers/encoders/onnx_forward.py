"""The ONNX Runtime forward pass: ``onnx-fp32`` and ``onnx-int8``.

The model was exported once at set-up (``scripts/export_onnx.py``, ``make
encoder-runtimes``) with inputs ``input_ids`` and ``attention_mask`` and output
``last_hidden_state``, batch and sequence axes dynamic; ``model.int8.onnx`` is the same
graph with dynamic int8 quantization of its weight matrices. ONNX Runtime applies its
graph fusions when the session opens. One vector per token comes back, as from PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxForward:
    def __init__(self, path: Path, runtime: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(int(threads), 0)  # 0 = ONNX Runtime's default (every core)
        options.inter_op_num_threads = 1
        self.runtime = runtime
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ValueError(f"{path} takes {sorted(names)}, not input_ids and attention_mask; export it again")
        self._token_types = "token_type_ids" in names

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                 "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64)}
        if self._token_types:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        return np.asarray(hidden, dtype=np.float32)
