"""Meshes, logical axis rules and multi-host plumbing."""
