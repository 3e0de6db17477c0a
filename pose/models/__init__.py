"""The network and what is computed from it: HRNet (+ PSA), the heatmap loss, complexity."""
