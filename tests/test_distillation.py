"""Tests for the knowledge-distillation loss: limits, closed-form gradient, finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from asc_jax.compress import distillation

BATCH, CLASSES = 5, 4


@pytest.fixture(autouse=True)
def float64():
  with jax.enable_x64(True):
    yield


def logits(seed):
  return jax.random.normal(jax.random.key(seed), (BATCH, CLASSES), jnp.float64) * 2.0


def labels():
  return jax.nn.one_hot(jnp.array([0, 3, 1, 2, 3]), CLASSES, dtype=jnp.float64)


def test_one_hot_teacher_at_t1_alpha1_equals_cross_entropy():
  student, y = logits(0), labels()
  teacher = 1e4 * y   # a very large logit gap: softmax(teacher) is exactly one-hot.
  loss = distillation.distillation_loss(student, labels(), teacher, alpha=1.0, temperature=1.0)
  np.testing.assert_allclose(loss, optax.losses.softmax_cross_entropy(student, y), rtol=1e-12)


def test_alpha_zero_is_cross_entropy_with_soft_labels():
  student = logits(0)
  soft = jax.nn.softmax(logits(1))
  loss = distillation.distillation_loss(student, soft, logits(2), alpha=0.0, temperature=3.0)
  np.testing.assert_allclose(loss, optax.losses.softmax_cross_entropy(student, soft), rtol=1e-12)


def test_teacher_equal_to_student_adds_nothing():
  student = logits(0)
  loss = distillation.distillation_loss(student, labels(), student, alpha=0.7, temperature=2.0)
  np.testing.assert_allclose(
      loss, 0.3 * optax.losses.softmax_cross_entropy(student, labels()), rtol=1e-12)


@pytest.mark.parametrize('alpha,temperature', [(0.5, 1.0), (0.9, 2.0), (0.3, 4.0)])
def test_gradient_has_closed_form(alpha, temperature):
  student, teacher, y = logits(0), logits(1), labels()
  grad = jax.grad(lambda s: distillation.distillation_loss(
      s, y, teacher, alpha=alpha, temperature=temperature).sum())(student)
  expected = (alpha * temperature * (jax.nn.softmax(student / temperature)
                                     - jax.nn.softmax(teacher / temperature))
              + (1 - alpha) * (jax.nn.softmax(student) - y))
  np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_gradient_matches_finite_differences():
  student, teacher, y = logits(3), logits(4), jax.nn.softmax(logits(5))
  loss = lambda s: distillation.distillation_loss(s, y, teacher, alpha=0.6,
                                                  temperature=2.5).sum()
  grad = np.asarray(jax.grad(loss)(student))
  step = 1e-6
  numeric = np.zeros_like(grad)
  for index in np.ndindex(*grad.shape):
    offset = jnp.zeros_like(student).at[index].set(step)
    numeric[index] = (loss(student + offset) - loss(student - offset)) / (2 * step)
  np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_no_gradient_flows_to_the_teacher():
  student, teacher = logits(0), logits(1)
  grad = jax.grad(lambda t: distillation.distillation_loss(
      student, labels(), t, alpha=0.5, temperature=2.0).sum())(teacher)
  np.testing.assert_array_equal(grad, 0.0)


def test_mixed_teacher_targets_path_matches_logits_path():
  student, teacher = logits(0), logits(1)
  direct = distillation.distillation_loss(student, labels(), teacher, alpha=0.4, temperature=2.0)
  via_targets = distillation.distillation_loss_from_teacher_targets(
      student, labels(), distillation.teacher_targets(teacher, 2.0), alpha=0.4, temperature=2.0)
  np.testing.assert_allclose(direct, via_targets, rtol=1e-12)


def test_low_precision_logits_give_a_float32_loss():
  student = logits(0).astype(jnp.bfloat16)
  loss = distillation.distillation_loss(student, labels().astype(jnp.float32),
                                        logits(1).astype(jnp.bfloat16), alpha=0.5,
                                        temperature=2.0)
  assert loss.dtype == jnp.float32 and loss.shape == (BATCH,)
