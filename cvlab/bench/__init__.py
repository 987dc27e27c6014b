"""Benchmarks: ``cvlab bench core|triton|client|datasets|train|standin|gpu|all`` print figures (speed targets live here)."""
