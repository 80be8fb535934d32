"""Everything that speaks to Triton. Only this package imports tritonclient."""
