"""Post-training on verifiable rewards (GRPO): the objective, the prompt stream,
the rewards and the rollout. The stage itself is `unified_mm.tasks.grpo`, a
task of the one trainer."""
