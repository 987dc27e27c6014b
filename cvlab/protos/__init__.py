"""Protobuf schemas (TAO DetectNet_v2 specs, the Triton apps' clustering config) and their generated code."""
