"""Networks used only by benchmarks."""
