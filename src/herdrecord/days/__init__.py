"""Per-animal days derived from links: keyframe choice, anomalies, weights, retention and the
storage budget.
"""
