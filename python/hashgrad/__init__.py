"""hashgrad workers: train a model on a hashgrad cluster.

``hashgrad.Client`` speaks a node's worker API; ``hashgrad.Session`` drives one worker
through jobs; ``hashgrad.torch.Optimizer`` wraps it for a PyTorch model (torch is imported
only there); ``hashgrad.data`` holds the digits set and the seeded batches;
``hashgrad.checkpoint`` reads and writes safetensors files.
"""

from .checkpoint import encode_safetensors, load_checkpoint, load_safetensors
from .client import Client, Job, NodeError, NodeUnreachable, Registration, read_token
from .session import Session

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Job",
    "NodeError",
    "NodeUnreachable",
    "Registration",
    "Session",
    "encode_safetensors",
    "load_checkpoint",
    "load_safetensors",
    "read_token",
    "__version__",
]
