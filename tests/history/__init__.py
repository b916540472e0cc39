"""The revision graph: real and generated histories under both commands, the author workflow."""
