"""Classifiers on features: LightGBM and its searches, KNN and its genetic tuning, model files."""
