"""Machine-learning bills of materials: what a checkpoint is, and how sure we are of each part.

`facts` holds the input (every field tagged verified, declared or absent), `modelcard` reads
the declared part from a model card, and `cyclonedx` and `spdx` write the two documents.
"""
