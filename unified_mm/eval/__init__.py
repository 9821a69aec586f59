"""Evaluators and evaluation sweeps."""
