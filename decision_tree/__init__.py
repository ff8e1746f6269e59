"""Decision-tree reward model: an interpretable tree over attribute-score differences (see README.md)."""
