"""Trainers: the batched linear sweep and the ResNet trainer."""
