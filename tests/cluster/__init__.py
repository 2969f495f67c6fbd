"""Harnesses that start real cluster software (a one-node SLURM) for tests."""
