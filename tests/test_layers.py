"""cnnzoo's ReLU is jax.nn.relu bit for bit, value and gradient; only its HLO form differs.

The select form exists for XLA's CPU fusion (see ``cnnzoo.models.layers.relu``); these tests pin
that the change of form changed no number, and that the form is the one the speed-up relies on.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models.layers import ACTIVATIONS, relu

SPECIAL = [-0.0, 0.0, -1.0, 1.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3.5, -2.25, 1e-38, -1e-38]


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_relu_is_jax_nn_relu_bitwise(dtype):
    x = jnp.concatenate([jnp.asarray(SPECIAL, jnp.float32),
                         jax.random.normal(jax.random.PRNGKey(0), (1000,))]).astype(dtype)
    bits = np.uint16 if dtype == jnp.bfloat16 else np.uint32
    for f in (lambda v: v, jax.jit):  # eager and compiled
        np.testing.assert_array_equal(np.asarray(f(relu)(x)).view(bits), np.asarray(f(jax.nn.relu)(x)).view(bits))
        grad = lambda act: f(jax.vmap(jax.grad(lambda v: act(v).astype(jnp.float32))))(x)  # noqa: E731
        np.testing.assert_array_equal(np.asarray(grad(relu), np.float32), np.asarray(grad(jax.nn.relu), np.float32))
    assert ACTIVATIONS['relu'] is relu


def test_relu_lowers_to_a_select_not_a_max():
    text = jax.jit(relu).lower(jnp.ones((4, 8), jnp.float32)).as_text()
    assert 'select' in text and 'maximum' not in text
