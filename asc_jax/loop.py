"""The one training loop: step, then the hooks that are due.

Everything periodic (progress and metric writing, validation, checkpoints, sparsity reports,
non-finite checks, early stopping) is a hook (asc_jax.hooks), in the style of
`clu.periodic_actions`; clu itself is not used because it pulls in TensorFlow. Stop signals are
agreed between processes (asc_jax.preemption) so that every process runs the same hooks at the
same step. Classifier runs, compression, vmapped sweeps, the translator and the benchmarks all
train through `train_loop`.
"""

import dataclasses
from typing import Any, Iterator, Optional, Protocol, Sequence

from asc_jax import builder
from asc_jax import preemption


@dataclasses.dataclass
class StepContext:
  """What the hooks of one step see; `shared` carries results from one hook to the next (the
  validation metrics to the checkpoint), `finish` lets a hook end training (early stopping)."""
  step: int
  total_steps: int
  state: Any
  metrics: dict
  stopping: bool
  shared: dict = dataclasses.field(default_factory=dict)
  finish: bool = False

  @property
  def is_last(self) -> bool:
    return self.step >= self.total_steps or self.finish


class Hook(Protocol):
  def __call__(self, context: StepContext) -> None: ...


@dataclasses.dataclass(frozen=True)
class LoopResult:
  state: Any
  step: int
  completed: bool          # reached the last step or a hook finished it (not stopped early).
  signal_name: str         # the stop signal of this process ('' when none or another's).


def train_loop(run: builder.Run, state: Any, batches: Iterator[dict], base_key: Any,
               hooks: Sequence[Hook], stop_every_steps: int = 1,
               total_steps: Optional[int] = None) -> LoopResult:
  """Trains from state.step to `total_steps` (default run.total_steps) on local `batches`."""
  total = run.total_steps if total_steps is None else total_steps
  step = int(_first(state.step))
  completed = step >= total
  with preemption.stop_on_signals() as request:
    while step < total:
      state, metrics = run.train_step(state, run.global_batch(next(batches)), base_key)
      step += 1
      context = StepContext(step=step, total_steps=total, state=state, metrics=metrics,
                            stopping=preemption.agreed_stop(request, step, stop_every_steps))
      for hook in hooks:
        hook(context)
      if context.finish or step >= total:
        completed = True
        break
      if context.stopping:
        break
  return LoopResult(state=state, step=step, completed=completed, signal_name=request.signal_name)


def _first(step: Any) -> Any:
  """The step counter of a state (the first member's of a stacked state)."""
  return step.reshape(-1)[0] if getattr(step, 'ndim', 0) else step
