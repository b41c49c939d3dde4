"""Distribution: agents as OCI artifacts, pushed to and pulled from any registry (see service.py).

- artifact.py — the manifest, config and layers (pure);
- registry.py — references and the `oras` client behind the egress guard (the only SDK user);
- signing.py — cosign-compatible keyed signatures (ECDSA P-256, offline);
- service.py — push, pull, inspect, registry logins and the team's signature policy.
"""
