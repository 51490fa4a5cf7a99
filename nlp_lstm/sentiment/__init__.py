"""The IMDB sentiment app."""
