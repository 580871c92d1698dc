"""Training: one loop (`fit`) that every task plugs into (speechrnn/tasks/), with its parts: the optimizer and LR
schedule (optim), checkpoint state (state), the run folder (rundir), CMVN statistics (cmvn) and torch.distributed
(distributed)."""

from .loop import AccuracyTask, FitResult, Task, fit

__all__ = ["AccuracyTask", "FitResult", "Task", "fit"]
