"""Worked examples that are bigger than a docstring: ``gpt`` (a character-level tiny GPT).

Nothing here is imported by ``import tinygrad_lite``; import the module you want explicitly.
"""
