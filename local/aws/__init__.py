"""Promotion to real AWS: the SageMaker endpoint and training jobs, their roles and images."""
