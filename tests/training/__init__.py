"""Tests for the training stage."""
