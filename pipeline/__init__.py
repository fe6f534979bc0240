"""Steps that span stages: a shoot folder ingested and then checked by shot QA.

Stages never call the stages downstream of them; what chains them lives here, and the CLI,
the demo and the Shoots page all go through it.
"""
