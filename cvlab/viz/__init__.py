"""Pictures: detection overlays and plots (training curves, dataset statistics, PR curves)."""
