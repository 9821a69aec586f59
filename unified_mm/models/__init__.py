"""Models: the unified transformer (`models.transformer`), tokenizer and renderer."""
