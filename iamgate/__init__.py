"""iamgate: a least-privilege gate for AWS IAM."""
__version__ = "0.1.0"
