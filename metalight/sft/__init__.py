"""Supervised fine-tuning pieces: prompt-completion examples, their tokenisation, and target builders."""
