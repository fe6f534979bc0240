"""Model registry: checkpoint aliases, lineage from each person's release to every generated
face, taint when a release is revoked, and Content Credentials on exported faces."""
