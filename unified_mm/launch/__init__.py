"""Renders and runs multi-process training jobs: local, SLURM, TPU pods, GKE.

Every target turns a `LaunchSpec` into a `Rendered` job (files to write and
commands to run), so a dry run prints exactly what a real launch executes.
"""
