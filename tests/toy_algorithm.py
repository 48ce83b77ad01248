"""A researcher's own algorithm, added through the public registry alone (tests/test_seams.py):

    python tests/toy_algorithm.py --algo toy_positive [any train_zero_math.py flag]

``toy_positive``: every response gets advantage +1 (a fixed sign), and its loss is twice the
PPO-clip surrogate on the token ratio. It asks the loop for the sampler's logprobs and checks,
inside the loss, that they are the learner's own (same weights, one update per step)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from understand_r1_zero.losses import Algorithm, policy_loss, register_algorithm  # noqa: E402


def positive_advantages(rewards: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(rewards)  # [P, G]


def doubled_loss(logprobs, old_logprobs, advantages, mask, *, sampler_logprobs, **kw):
    assert sampler_logprobs.shape == logprobs.shape, (sampler_logprobs.shape, logprobs.shape)
    gap = torch.where(mask.bool(), sampler_logprobs - logprobs.detach(), 0.0).abs().max().item()
    assert gap < 1e-3, f"sampler and learner logprobs differ by {gap}"
    loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask, **kw)
    return 2 * loss, stats


register_algorithm(Algorithm("toy_positive", positive_advantages, "token_mean", loss_fn=doubled_loss,
                             sampler_logprobs=True, paper="a test: advantage +1, twice the surrogate"))

if __name__ == "__main__":
    import train_zero_math

    train_zero_math._cli()
