"""Deployment artefacts generated from the library's settings (Kubernetes + KEDA)."""
