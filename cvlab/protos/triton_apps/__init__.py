"""The tao-toolkit-triton-apps clustering-config schema (``postprocessor_config.proto``)."""
