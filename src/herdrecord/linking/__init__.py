"""Linking tracklets to individual animals: pen-days, stitching, newcomers, the pool, the learned
metric, confidence and review.
"""
