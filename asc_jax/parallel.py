"""Devices, mesh and shardings: data parallelism over every device with jit and a 'data' axis.

One code path serves 1 CPU, forced CPU devices, a GPU, or a multi-host TPU pod: the model state
is replicated, the global batch is split along its first axis over the 'data' mesh axis, and
jax.jit inserts the collectives (BatchNorm statistics and gradient means span the global batch).
"""

import functools
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> jax.sharding.Mesh:
  """A one-axis mesh over `devices` (default: all devices of all processes)."""
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def traced_on(function: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """`function` traced with `mesh` as the abstract mesh, so that `replicated_draw` inside it can
  name the replicated sharding (jit it with shardings on the same mesh)."""

  @functools.wraps(function)
  def traced(*args):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return function(*args)

  return traced


def replicated_draw(x: jax.Array) -> jax.Array:
  """`x` computed whole on every device: for small per-example random draws whose sampler loops
  until a data-dependent condition (jax.random.beta's gamma rejection sampling, for mixup and
  Freq-MixStyle). Split along the batch, such a loop's condition becomes an all-reduce, and two
  independent loops can reach their all-reduces in different orders on two host devices: a
  deadlock (XLA aborts after 40 s; seen with mixup, Freq-MixStyle and device translation on the
  default two CPU devices). Replicated, the loops need no collective; the values are the same
  (JAX's partitionable threefry). A no-op outside `traced_on` (one device, tests of a function)."""
  if jax.sharding.get_abstract_mesh().empty:
    return x
  return jax.lax.with_sharding_constraint(x, PartitionSpec())


def check_batch_size(global_batch_size: int, key: str, mesh: jax.sharding.Mesh) -> None:
  """Global batches must split evenly over the mesh's devices."""
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise ValueError(f'{key}={global_batch_size} does not split over {devices} devices: set it '
                     f'to a multiple of {devices}.')


def to_global_batch(local_batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh
                    ) -> dict[str, jax.Array]:
  """Assembles each process's slice of the batch into one global array sharded on 'data'."""
  sharding = batch_sharded(mesh)
  return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for name, value in local_batch.items()}


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Places a pytree (the train state) on every device of every process; host values must be the
  same on every process, leaves already replicated on `mesh` are kept as they are."""
  sharding = replicated(mesh)

  def place(leaf):
    if isinstance(leaf, jax.Array) and leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
      return leaf
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(place, tree)
