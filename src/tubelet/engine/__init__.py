"""Training and inference engine shared by every method."""
