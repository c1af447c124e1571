"""Sub-commands of the `jaxgeo` CLI that belong to no single module (see jaxgeo.cli), and the
arguments several of them share."""


def add_cpu_devices_argument(parser, verb: str, scope: str = "") -> None:
  """`--cpu-devices N` of a command that runs a saved run's network (`eval`, `predict`,
  `dock`): on a host without GPU / TPU the CPU is split as the run's `jaxgeo train` split it
  (`train.saved_cpu_device_count`), or into N devices. `verb`: what runs data-parallel;
  `scope`: the mode it applies to, if not every one (e.g. "--pairs")."""
  parser.add_argument(
      "--cpu-devices", type=int, default=None, metavar="N",
      help=f"{scope + ' ' if scope else ''}on a host without GPU / TPU, split the CPU into N "
      f"JAX devices and {verb} data-parallel over them (default: the run's "
      "train.cpu_devices, as `jaxgeo train` split it; 0: one per core; 1: one device)")
