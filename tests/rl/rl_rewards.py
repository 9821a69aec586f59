"""A user reward (`rl.reward = "rl_rewards:plan_length"`) that a barely trained
transformer already gets a spread of: the tests need gradients that are not round-off."""


def plan_length(sample) -> float:
  return float(len(sample.tokens))
