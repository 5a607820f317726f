"""matr: a reproducibility kit for MATR (Moment Alignment TRansformer, ICCV 2025)."""

__version__ = "0.1.0"
