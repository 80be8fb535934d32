"""Operator tooling that puts models into the Triton model repository."""
