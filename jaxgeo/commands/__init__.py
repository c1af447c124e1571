"""Sub-commands of the `jaxgeo` CLI that belong to no single module (see jaxgeo.cli)."""
