"""Getting batches in: sources, the one intake pipeline, the journal, replay, group commit and
push.
"""
