"""Benchmarks: ``cvlab bench core|triton|datasets|train|all`` print figures (speed targets live here)."""
