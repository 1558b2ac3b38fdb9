"""The DINOv3 embedder, re-embedding and MOT import."""
