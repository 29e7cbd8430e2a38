"""Scanners: pure functions of bytes and paths that say whether a model file is safe to load.

Scanners never unpickle, import or execute what they scan, and never see the database.
"""
