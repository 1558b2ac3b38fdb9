"""Reading one animal or the herd: timelines, plots, pictures, the animals' table and the herd
view.
"""
