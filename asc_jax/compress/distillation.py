"""Knowledge-distillation loss (Hinton et al., 2015) on top of optax losses.

loss = (1 - alpha) * CE(labels, student)
       + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The T^2 factor keeps the gradient of the KL term on the scale of the label term: its gradient with
respect to the student logits is alpha * T * (softmax(student / T) - softmax(teacher / T)).
With mixup, convert the teacher logits with `teacher_targets` first and let mixup mix those
probabilities together with the labels; then call `distillation_loss_from_teacher_targets`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def at_least_float32(array: jax.Array) -> jax.Array:
  """array in float32, or in its own dtype when that is wider (float64 under jax_enable_x64)."""
  return array.astype(jnp.promote_types(array.dtype, jnp.float32))


def teacher_targets(teacher_logits: jax.Array, temperature: float) -> jax.Array:
  """softmax(teacher_logits / T), at least float32: the soft targets the student learns from."""
  return jax.nn.softmax(at_least_float32(teacher_logits) / temperature, axis=-1)


def distillation_loss_from_teacher_targets(student_logits: jax.Array, labels: jax.Array,
                                           soft_targets: jax.Array, *, alpha: float,
                                           temperature: float) -> jax.Array:
  """Per-example loss [B] given teacher probabilities at temperature T ([B, K], rows sum to 1).

  `labels` are one-hot or soft [B, K]; `soft_targets` receive no gradient.
  """
  student = at_least_float32(student_logits)
  label_loss = optax.losses.softmax_cross_entropy(student, labels.astype(student.dtype))
  log_student = jax.nn.log_softmax(student / temperature, axis=-1)
  teacher_loss = optax.losses.kl_divergence(log_student, jax.lax.stop_gradient(soft_targets))
  return (1.0 - alpha) * label_loss + alpha * temperature**2 * teacher_loss


def distillation_loss(student_logits: jax.Array, labels: jax.Array, teacher_logits: jax.Array, *,
                      alpha: float, temperature: float) -> jax.Array:
  """Per-example loss [B] from student logits, labels [B, K] and teacher logits [B, K]."""
  return distillation_loss_from_teacher_targets(
      student_logits, labels, teacher_targets(teacher_logits, temperature), alpha=alpha,
      temperature=temperature)


def distillation_parts(teacher_probs: np.ndarray, distill) -> dict:
  """classifier_task options (asc_jax.builder) that distill from teacher_probs[record index]
  ([train records, K], `teacher_targets` of the teacher logits) with config.distill's alpha and
  temperature: a batch transform adding the teacher's probabilities before augmentation (mixup
  mixes them like the labels) and the distillation loss."""
  table = jnp.asarray(teacher_probs, jnp.float32)

  def add_teacher_probs(batch):
    return {**batch, 'teacher_probs': table[batch['index']]}

  def loss_fn(logits, targets, batch):
    del batch
    return distillation_loss_from_teacher_targets(
        logits, targets['label'], targets['teacher_probs'], alpha=distill.alpha,
        temperature=distill.temperature)

  return dict(batch_transform=add_teacher_probs, loss_fn=loss_fn)
