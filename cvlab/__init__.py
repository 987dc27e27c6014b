"""cvlab."""
