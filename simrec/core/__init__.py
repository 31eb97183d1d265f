"""Pure core: no cloud library, no Spark, no Beam, no web framework.

Plain Python, NumPy and Cython over plain data, so it is tested fast and exactly.
"""
