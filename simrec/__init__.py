"""simrec: a serverless item-to-item recommender (DIMSUM on Spark, Beam load, HTTP serving)."""

__version__ = "0.1.0"
