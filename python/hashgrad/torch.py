"""A PyTorch optimizer whose step runs on the cluster: ``step()`` flattens the gradients
(``parameters_to_vector``), sends them for the current job, waits for the committed round and
loads its params back into the model in place. The update rule (SGD, Adam, AdamW, clipping,
schedule) is the cluster's config store, applied by the aggregator in Rust."""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch as _torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from .client import Client, Job
from .session import Session


def layout_of(model: "_torch.nn.Module") -> List[Tuple[str, Tuple[int, ...]]]:
    """The model's trainable tensors, names and shapes, in ``parameters()`` order."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters() if p.requires_grad]


class Optimizer:
    """``hg.Optimizer(model, node="http://127.0.0.1:7180")``; the token is read from
    ``data_dir`` (or ``$HASHGRAD_DATA_DIR``/``$HASHGRAD_TOKEN``)."""

    def __init__(self, model: "_torch.nn.Module", node: str = "http://127.0.0.1:7180", *,
                 data_dir: Optional[str] = None, token: Optional[str] = None,
                 idle_s: float = 60.0) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        initial = parameters_to_vector(self.params).detach().cpu().numpy().astype(np.float32)
        self.client = Client(node, data_dir=data_dir, token=token)
        self.session = Session(self.client, layout_of(model), initial, idle_s=idle_s)
        self.last_loss = float("nan")
        params = self.session.start()
        if params is None:
            raise TimeoutError("no job from the node; is the cluster training?")
        self._load(params)

    @property
    def job(self) -> Optional[Job]:
        """The job the model's params are at now (its batch: ``hashgrad.data.batch_indices``)."""
        return self.session.job

    @property
    def finished(self) -> bool:
        """True once the cluster stopped giving jobs."""
        return self.session.job is None

    def _load(self, values: np.ndarray) -> None:
        with _torch.no_grad():
            vector = _torch.from_numpy(values).to(self.params[0].device, self.params[0].dtype)
            vector_to_parameters(vector, self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients (like ``torch.optim.Optimizer.zero_grad``)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self, loss: Optional[float] = None) -> bool:
        """Sends the gradient, loads the next committed params; False when training ended."""
        grads = [p.grad if p.grad is not None else _torch.zeros_like(p) for p in self.params]
        flat = parameters_to_vector(grads).detach().cpu().numpy().astype(np.float32)
        value = float(loss) if loss is not None else self.last_loss
        params = self.session.step(value if np.isfinite(value) else 0.0, flat)
        if params is None:
            self.session.job = None
            return False
        self._load(params)
        return True

    def report(self, accuracy: Optional[float] = None, loss: Optional[float] = None) -> None:
        """Reports held-out metrics of the current params to the node (/status)."""
        self.session.report(accuracy, loss)
