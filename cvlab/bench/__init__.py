"""Benchmarks: ``cvlab bench core|triton|datasets|train|standin|gpu|all`` print figures (speed targets live here)."""
