"""TAO DetectNet_v2 experiment-spec schemas (``.proto`` sources and generated ``_pb2`` modules)."""
