"""Model configurations: frozen dataclasses, one per network plus the fusion options.

`ModelConfig` says which network, which head and how language-model features are joined to
the node inputs; `paper_config(network, fusion=...)` gives the configurations of the papers
(Jing et al. 2021 GVP-GNN, Satorras et al. 2021 EGNN, Wu et al. Molformer as used by the
"geometric GNNs meet protein language models" paper), whose parameter counts
`jaxgeo params` prints.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from jaxgeo import residues
from jaxgeo.errors import ConfigError

# The papers' networks (their paper configurations and parameter tables); EquiDock's IEGMN
# (a docking network with its own outputs, `jaxgeo.nets.iegmn`) is `ALL_NETWORKS`' fourth.
NETWORKS = ("gvp", "egnn", "molformer")
ALL_NETWORKS = NETWORKS + ("iegmn",)
HEADS = ("node", "graph")
FUSION_MODES = ("none", "replace", "concat", "project")
ACTIVATIONS = ("silu", "relu", "gelu")
MOLFORMER_ATTENTION_IMPLS = ("blocked", "dense")
# ESM-2 650M, the language model of the paper.
PAPER_LM_DIM = 1280
# Edges per chunk of a wide EGNN's message pass on CPU (`EGNNConfig.edge_chunk`): the fastest
# of 1024-5632 for the 1280-wide one on DB5.5 batches (experiments/results/
# bench_nets_2026-12-04.md).
WIDE_EGNN_EDGE_CHUNK = 2048


@dataclasses.dataclass(frozen=True)
class FusionConfig:
  """How residue identity and language-model (LM) vectors become node inputs.

  Attributes:
    mode: "none": a learned residue-type embedding (the paper's baseline); "replace": the
      LM vector alone (what the paper does); "concat": [type embedding, LM vector];
      "project": type embedding + a linear projection of the LM vector to `embed_dim`
      (same width as "none", so that parameter counts stay comparable).
    lm_dim: D of `nodes["lm"]` [N, D]; needed unless mode is "none".
    embed_dim: width of the residue-type embedding (modes none, concat, project).
    num_residue_types: aatype values 0..num_residue_types-1 are residues.
    num_elements: element vocabulary of non-protein nodes (`nodes["element"]`).
  Non-protein nodes (aatype == residues.LIGAND_ATOM) get a learned element embedding in
  place of the residue-type embedding (width `lm_dim` in "replace" mode) and a zero LM
  vector.
  """
  mode: str = "none"
  lm_dim: int = 0
  embed_dim: int = 32
  num_residue_types: int = residues.NUM_AATYPE
  num_elements: int = residues.NUM_ELEMENTS

  @property
  def out_dim(self) -> int:
    """Width of the fused node features."""
    return {"none": self.embed_dim, "replace": self.lm_dim,
            "concat": self.embed_dim + self.lm_dim, "project": self.embed_dim}[self.mode]


@dataclasses.dataclass(frozen=True)
class GVPConfig:
  """GVP-GNN (Jing et al. 2021, vector gating).

  Attributes:
    node_dims: (scalar, vector) channels of the node embeddings.
    edge_dims: (scalar, vector) channels of the edge embeddings.
    num_layers: GVPConvLayers.
    dropout: drop rate in every GVPConvLayer (scalars and whole vector channels).
    n_message: GVPs in the message function.
    n_feedforward: GVPs in the node feed-forward.
    vector_gate: gate vectors by a sigmoid of the scalars (Jing et al. 2021b).
    unroll: layers unrolled per iteration of the layer scan in training passes
      (`hk.layer_stack`; 1 keeps compile time independent of depth; more is faster on CPU
      for some networks, see `paper_config`).
    eval_unroll: the same for evaluation passes (`is_training=False`).
    remat: recompute activations in the backward pass instead of storing them: each chunk
      of edges' messages when the edges are chunked, else each layer (faster on CPU: the
      stored per-edge activations cost more to move than to recompute; less memory
      everywhere). Training passes only: evaluation passes, which have no backward pass,
      are compiled without its boundaries.
    edge_chunk: on CPU, edges at most per chunk of the message pass (`gvp.GVPConv`: a scan
      over chunks keeps each chunk's per-edge work in the CPU caches); 0: all edges at once,
      as on GPU / TPU always. Only the order of additions changes.
    eval_edge_chunk: the same for evaluation passes (`is_training=False`), which were
      faster with smaller chunks than training passes on a CPU split into one device a
      core (`experiments/results/speed_log.md`).
    chunk_vjp: with chunks and remat, differentiate the loop over edge chunks by a custom
      VJP that recomputes each chunk in its backward loop (`edge_chunks.sum_over_edges`'
      `recompute_vjp`: both loops run over the real chunks only) instead of a scan of
      rematerialised chunks behind the padding skip's `cond`; the same values, gradients
      to float32 rounding.
  """
  node_dims: tuple[int, int] = (100, 16)
  edge_dims: tuple[int, int] = (32, 1)
  num_layers: int = 5
  dropout: float = 0.1
  n_message: int = 3
  n_feedforward: int = 2
  vector_gate: bool = True
  unroll: int = 1
  eval_unroll: int = 1
  remat: bool = True
  edge_chunk: int = 3072
  eval_edge_chunk: int = 512
  chunk_vjp: bool = True


@dataclasses.dataclass(frozen=True)
class EGNNConfig:
  """EGNN (Satorras et al. 2021), E_GCL layers.

  Attributes:
    hidden: width of node features and messages.
    num_layers: E_GCL layers.
    activation: "silu" (paper), "relu" or "gelu".
    update_coords: update coordinates in each layer (they enter the next layer's distances).
    return_coords: return the final coordinates as "x"; False for the papers' networks,
      whose outputs are the node features (the last layer's coordinate update is then
      computed and unused: cheaper than skipping it, see `EGNN`).
    normalize: divide x_i - x_j by its length in the coordinate update (the paper's code:
      off; `paper_config` turns it off).
    coord_gain: xavier-uniform gain of the last layer of the coordinate MLP.
    attention: gate messages by a sigmoid of a linear function of themselves.
    input_linear: map the fused node inputs to `hidden` with a linear layer; when False
      (the paper's code) the fused width must equal `hidden`.
    unroll, eval_unroll, remat, edge_chunk: as in `GVPConfig`; edge_chunk 0 (no chunks) by
      default, as the paper's 32-wide EGNN measured no faster with chunks on DB5.5 batches.
    store_chunk_dots: in training passes over edge chunks, keep each chunk's matmul outputs
      for the backward pass instead of recomputing the chunk (`edge_chunks.stored_chunk_sums`;
      overrides `remat` there; no effect without chunks, so none on GPU / TPU).
  """
  hidden: int = 32
  num_layers: int = 4
  activation: str = "silu"
  update_coords: bool = True
  return_coords: bool = True
  normalize: bool = True
  coord_gain: float = 0.001
  attention: bool = False
  input_linear: bool = True
  unroll: int = 1
  eval_unroll: int = 1
  remat: bool = True
  edge_chunk: int = 0
  store_chunk_dots: bool = False


@dataclasses.dataclass(frozen=True)
class MolformerConfig:
  """Molformer-style encoder: pre-norm transformer whose attention scores are multiplied
  by a learned per-head function of the pairwise distance (Wu et al.).

  Attributes:
    width: model width.
    num_layers: encoder layers.
    num_heads: attention heads (width % num_heads == 0).
    ffn_dim: hidden width of the feed-forward (the paper's code uses `width`).
    dropout: on attention probabilities, sub-layer outputs and the feed-forward.
    distance_scale: distances (Angstrom) are multiplied by this before the learned
      distance function (1.0: as in the paper's code).
    query_block: queries per block of the blocked attention (memory and speed knob).
    key_block: keys per block; blocks of keys that hold no node of the queries' graphs are
      skipped.
    attention_impl: "blocked" (the default: the blocked online-softmax loop, never an
      [N, N] matrix; made for CPU caches) or "dense" (`molformer.dense_graph_attention`:
      [H, N, N] scores over the whole batch in a few large operations, for GPUs / TPUs).
    input_linear: as in `EGNNConfig`.
    unroll, eval_unroll, remat: as in `GVPConfig` (remat is off by default: the attention
      already keeps only its inputs, outputs and log-sum-exp for its backward pass).
  """
  width: int = 32
  num_layers: int = 2
  num_heads: int = 4
  ffn_dim: int = 32
  dropout: float = 0.1
  distance_scale: float = 1.0
  query_block: int = 128
  key_block: int = 128
  attention_impl: str = "blocked"
  input_linear: bool = True
  unroll: int = 1
  eval_unroll: int = 1
  remat: bool = False


@dataclasses.dataclass(frozen=True)
class IEGMNConfig:
  """IEGMN hyper-parameters (`jaxgeo.nets.iegmn`); the defaults are EquiDock's DB5.5 model
  (its checkpoint `db5_model_best.pth`: Hdim 64, Nlay 5, shared layers, LayerNorm, 50 heads,
  skip 0.5, x-connection 0, leaky-ReLU slope 0.01; cross messages, distances in layers,
  edge features and surface features on, dropout 0).

  Attributes:
    fusion: node inputs (`jaxgeo.nets.fusion`); EquiDock: a 64-wide residue-type embedding.
    num_layers: IEGMN layers.
    hidden: width of the messages and node features after the first layer.
    num_keypoints: K keypoints per partner (attention heads).
    shared_layers: layers 2..num_layers share their parameters (EquiDock's `shared_layers`).
    cross_messages: cross-graph attention messages (off: mu_i = 0).
    distances_in_layers: RBFs of the current distances enter every message.
    edge_features: the input edge features (`edges["s"]`) enter every message.
    surface_features: concatenate `nodes["surface"]` [N, 5] to the fused node inputs.
    layer_norm: LayerNorm inside the edge and node MLPs.
    skip_weight: w in h <- w phi_h(...) + (1 - w) h (layers whose width does not change).
    x_connection: c in x <- c x^0 + (1 - c) x + update.
    leaky_relu_slope: negative slope of the leaky ReLUs.
    dropout: inside the MLPs, when training.
  """
  fusion: FusionConfig = FusionConfig(mode="none", embed_dim=64)
  num_layers: int = 5
  hidden: int = 64
  num_keypoints: int = 50
  shared_layers: bool = True
  cross_messages: bool = True
  distances_in_layers: bool = True
  edge_features: bool = True
  surface_features: bool = True
  layer_norm: bool = True
  skip_weight: float = 0.5
  x_connection: float = 0.0
  leaky_relu_slope: float = 0.01
  dropout: float = 0.0

  def replace(self, **changes) -> "IEGMNConfig":
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A network, its node inputs and its head.

  Attributes:
    network: "gvp", "egnn", "molformer" or "iegmn" (EquiDock's docking network: its outputs
      are a rigid motion of each pair's ligand, see `jaxgeo.nets.iegmn.make_iegmn`; `head`,
      `out_dim`, `node_features`, `head_*` do not apply to it, and its node inputs are
      `iegmn.fusion`, which must agree with `fusion` in mode and lm_dim: `fusion` is what
      the trainer reads to decide which language-model rows to load; `iegmn_model()` builds
      such a pair).
    head: "node" (per-node outputs, e.g. interface) or "graph" (per-graph outputs, mean
      pooled over each graph's real nodes, e.g. quality, affinity).
    out_dim: outputs per node or graph.
    fusion: language-model fusion.
    node_features: also feed the graph's node features (dihedral scalars `s` [N, 6]; and for
      GVP the vectors `v` [N, 3, 3]), which only "rich" graphs have; the papers'
      configurations use the residue type (or LM vector) alone.
    head_hidden: hidden width of the output MLP (None: 2 x the encoder width for GVP and
      EGNN, the encoder width for Molformer, as in the papers' code).
    head_dropout: dropout in the output MLP.
  """
  network: str = "gvp"
  head: str = "graph"
  out_dim: int = 1
  fusion: FusionConfig = FusionConfig()
  gvp: GVPConfig = GVPConfig()
  egnn: EGNNConfig = EGNNConfig()
  molformer: MolformerConfig = MolformerConfig()
  iegmn: IEGMNConfig = IEGMNConfig()
  node_features: bool = True
  head_hidden: int | None = None
  head_dropout: float = 0.1

  def replace(self, **changes: Any) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def encoder_width(config: ModelConfig) -> int:
  """Width of the per-node features the encoder hands to the head."""
  if config.network == "iegmn":
    return config.iegmn.hidden
  if config.network == "gvp":
    return config.gvp.node_dims[0]
  if config.network == "egnn":
    return config.egnn.hidden
  return config.molformer.width


def validate(config: ModelConfig) -> ModelConfig:
  """Raises ConfigError naming the option for an unknown or inconsistent setting."""
  if config.network not in ALL_NETWORKS:
    raise ConfigError(f"model.network={config.network!r}: expected one of {ALL_NETWORKS}")
  if config.head not in HEADS:
    raise ConfigError(f"model.head={config.head!r}: expected one of {HEADS}")
  if config.out_dim < 1:
    raise ConfigError(f"model.out_dim={config.out_dim}: must be at least 1")
  f = config.fusion
  if f.mode not in FUSION_MODES:
    raise ConfigError(f"model.fusion.mode={f.mode!r}: expected one of {FUSION_MODES}")
  if f.mode != "none" and f.lm_dim < 1:
    raise ConfigError(f"model.fusion.lm_dim={f.lm_dim}: fusion mode {f.mode!r} needs the "
                      "width of the language-model vectors")
  if f.embed_dim < 1 or f.num_residue_types < 1 or f.num_elements < 1:
    raise ConfigError("model.fusion: embed_dim, num_residue_types and num_elements must be "
                      "positive")
  g = config.gvp
  if len(g.node_dims) != 2 or len(g.edge_dims) != 2 or g.node_dims[0] < 1 or (
      g.node_dims[1] < 1) or min(g.edge_dims) < 0:
    raise ConfigError(f"model.gvp: node_dims={g.node_dims} needs scalar and vector channels "
                      f"> 0; edge_dims={g.edge_dims} >= 0")
  if g.num_layers < 1 or g.n_message < 1 or g.n_feedforward < 1:
    raise ConfigError("model.gvp: num_layers, n_message and n_feedforward must be >= 1")
  e = config.egnn
  if e.hidden < 1 or e.num_layers < 1:
    raise ConfigError("model.egnn: hidden and num_layers must be >= 1")
  if e.activation not in ACTIVATIONS:
    raise ConfigError(f"model.egnn.activation={e.activation!r}: expected one of "
                      f"{ACTIVATIONS}")
  m = config.molformer
  if m.width < 1 or m.num_layers < 1 or m.num_heads < 1 or m.ffn_dim < 1:
    raise ConfigError("model.molformer: width, num_layers, num_heads, ffn_dim must be >= 1")
  if m.width % m.num_heads:
    raise ConfigError(f"model.molformer.width={m.width} is not a multiple of num_heads="
                      f"{m.num_heads}")
  if m.query_block < 1 or m.key_block < 1:
    raise ConfigError("model.molformer: query_block and key_block must be >= 1")
  if m.attention_impl not in MOLFORMER_ATTENTION_IMPLS:
    raise ConfigError(f"model.molformer.attention_impl={m.attention_impl!r}: expected one of "
                      f"{', '.join(MOLFORMER_ATTENTION_IMPLS)}")
  if min(g.unroll, e.unroll, m.unroll, g.eval_unroll, e.eval_unroll, m.eval_unroll) < 1:
    raise ConfigError("model: unroll and eval_unroll must be >= 1 (gvp, egnn, molformer)")
  for name, rate in (("gvp.dropout", g.dropout), ("molformer.dropout", m.dropout),
                     ("head_dropout", config.head_dropout)):
    if not 0.0 <= rate < 1.0:
      raise ConfigError(f"model.{name}={rate}: must be in [0, 1)")
  if config.network == "iegmn":
    _validate_iegmn(config)
  if config.network in ("egnn", "molformer"):
    sub = e if config.network == "egnn" else m
    width = encoder_width(config)
    if not sub.input_linear and (f.out_dim != width or config.node_features):
      raise ConfigError(
          f"model.{config.network}.input_linear=False needs fused node inputs of the "
          f"network's width ({width}) and node_features=False; got fusion width "
          f"{f.out_dim} (mode {f.mode!r}), node_features={config.node_features}")
  return config


def validate_iegmn(i: "IEGMNConfig", where: str = "iegmn") -> "IEGMNConfig":
  """Raises ConfigError naming the option (`where`.key) for an invalid IEGMN setting."""
  if i.num_layers < 1 or i.hidden < 1 or i.num_keypoints < 3:
    raise ConfigError(f"{where}: num_layers={i.num_layers}, hidden={i.hidden} must be >= 1 "
                      f"and num_keypoints={i.num_keypoints} >= 3 (Kabsch needs 3)")
  if i.fusion.mode not in FUSION_MODES:
    raise ConfigError(f"{where}.fusion.mode={i.fusion.mode!r}: expected one of "
                      f"{FUSION_MODES}")
  if i.fusion.mode != "none" and i.fusion.lm_dim < 1:
    raise ConfigError(f"{where}.fusion.lm_dim={i.fusion.lm_dim}: fusion mode "
                      f"{i.fusion.mode!r} needs the width of the language-model vectors")
  if not 0.0 <= i.dropout < 1.0:
    raise ConfigError(f"{where}.dropout={i.dropout}: must be in [0, 1)")
  return i


def _validate_iegmn(config: ModelConfig) -> None:
  i = validate_iegmn(config.iegmn, "model.iegmn")
  if (i.fusion.mode, i.fusion.lm_dim) != (config.fusion.mode, config.fusion.lm_dim):
    raise ConfigError(
        f"model.iegmn.fusion (mode {i.fusion.mode!r}, lm_dim {i.fusion.lm_dim}) and "
        f"model.fusion (mode {config.fusion.mode!r}, lm_dim {config.fusion.lm_dim}) differ; "
        "set both (nets.config.iegmn_model builds a consistent ModelConfig)")


def iegmn_model(iegmn: IEGMNConfig = IEGMNConfig()) -> ModelConfig:
  """A ModelConfig of network "iegmn" whose `fusion` is the IEGMN's own (validated)."""
  return validate(ModelConfig(network="iegmn", fusion=iegmn.fusion, iegmn=iegmn,
                              node_features=False))


def paper_config(network: str, fusion: str = "none", head: str = "graph", out_dim: int = 1,
                 lm_dim: int = PAPER_LM_DIM) -> ModelConfig:
  """The papers' configuration of a network with a given fusion mode.

  - gvp: node dims (100, 16), edge dims (32, 1), 5 layers, dropout 0.1, residue-type
    embedding of 32 (the GGNN-meets-PLM code); "replace" feeds the LM vector to the first
    GVP instead.
  - egnn: 4 E_GCL layers, hidden 32, SiLU, no attention, coordinate updates not normalised
    (`normalize=False`, the paper's default); the embedding is the first hidden state. With
    "replace" the hidden width is the LM width (1280 for ESM-2 650M), as in the paper, and
    on CPU its messages are summed over chunks of `WIDE_EGNN_EDGE_CHUNK` edges whose matmul
    outputs training passes keep for the backward pass (`store_chunk_dots`).
  - molformer: 2 layers, width 32, 4 heads, feed-forward 32; "replace" widens to the LM
    width as in the paper.
  "project" keeps each network at its own width (type embedding + projected LM vector);
  "concat" keeps the width and adds an input linear layer.
  - iegmn: EquiDock's DB5.5 model (`IEGMNConfig()`); its residue-type embedding is 64 wide,
    "replace" feeds the LM vector instead, "project" adds linear(LM) to the 64-wide
    embedding, "concat" joins both. `head` / `out_dim` are recorded but unused.
  Node inputs are the residue
  type / LM vector only (node_features=False), as in the papers; the papers' graphs are
  `graph.residue_graph(..., features="paper")` (16 edge scalars, no node vectors), but these
  configurations also run on "rich" graphs (36 edge scalars).
  Speed settings (the same functions): the layer scans of GVP-GNN's and Molformer's training
  passes and of the 32-wide EGNN's evaluation passes are unrolled (faster on CPU; README,
  Library).
  """
  if network not in ALL_NETWORKS:
    raise ConfigError(f"network={network!r}: expected one of {ALL_NETWORKS}")
  if fusion not in FUSION_MODES:
    raise ConfigError(f"fusion={fusion!r}: expected one of {FUSION_MODES}")
  lm = 0 if fusion == "none" else lm_dim
  if network == "iegmn":
    iegmn = IEGMNConfig(fusion=FusionConfig(mode=fusion, lm_dim=lm, embed_dim=64))
    return validate(iegmn_model(iegmn).replace(head=head, out_dim=out_dim))
  if network == "gvp":
    config = ModelConfig(network="gvp", fusion=FusionConfig(mode=fusion, lm_dim=lm,
                                                            embed_dim=32),
                         gvp=GVPConfig(unroll=GVPConfig.num_layers))
  else:
    width = lm_dim if fusion == "replace" else 32
    fusion_config = FusionConfig(mode=fusion, lm_dim=lm, embed_dim=width)
    input_linear = fusion == "concat"
    if network == "egnn":
      # The wide "replace" EGNN passes messages over edge chunks on CPU (cache blocking; the
      # 32-wide one is faster without them, and evaluates faster with its layers unrolled),
      # and its training passes keep each chunk's matmul outputs instead of recomputing them
      # (matmul-bound: training 1.09-1.29x faster, about 350 MB a layer for a packed DB5.5
      # batch; experiments/results/bench_nets_egnn_stored_dots_2026-12-06.md).
      wide = width > 32
      config = ModelConfig(network="egnn", fusion=fusion_config,
                           egnn=EGNNConfig(hidden=width, input_linear=input_linear,
                                           return_coords=False, normalize=False,
                                           edge_chunk=WIDE_EGNN_EDGE_CHUNK if wide else 0,
                                           eval_unroll=1 if wide else EGNNConfig.num_layers,
                                           store_chunk_dots=wide))
    else:
      heads = 4
      config = ModelConfig(network="molformer", fusion=fusion_config,
                           molformer=MolformerConfig(width=width, num_heads=heads,
                                                     ffn_dim=width,
                                                     input_linear=input_linear,
                                                     unroll=MolformerConfig.num_layers))
  config = config.replace(head=head, out_dim=out_dim, node_features=False)
  return validate(config)
