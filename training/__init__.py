"""Training and evaluation of the head: datasets, feature files, the triplet loss, the trainer, the recipe."""
