"""Capture: shoot plans and shot lists from a dataset's shortfall, and a live hot folder that
judges each frame while the sitter is still in the chair."""
