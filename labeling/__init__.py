"""Labeling in Label Studio: taxonomy, config, server, push, pull, consensus and agreement."""
