"""Synthetic screens with known phenotypes: the bundled demo and benchmark screens."""
