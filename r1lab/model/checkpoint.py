"""Hugging Face checkpoints: `config.json` (model_type deepseek_v3) + `model.safetensors`.

A checkpoint written here loads with `transformers.AutoModelForCausalLM.from_pretrained(path)`
and no remote code; one written by transformers' `DeepseekV3ForCausalLM.save_pretrained` loads
here. Two layouts differ from r1lab's modules and are converted:
- routed experts: stacked `experts.gate_up_proj` (E, 2I, D) / `experts.down_proj` (E, D, I) here,
  one `experts.{e}.{gate,up,down}_proj.weight` per expert on disk (the published layout);
- MTP module k: `mtp.{k}.*` here, `model.layers.{num_hidden_layers + k}.*` on disk, with
  `shared_head.norm` for the output norm (the published names), written to `mtp.safetensors`
  so that transformers reads `model.safetensors` alone: its DeepseekV3 skips MTP weights only
  at layer 61 (the published model's) and would report any other layer's as unexpected.
  The published checkpoint also stores copies of the embedding and head per MTP module; they
  are shared, so they are skipped on load and not written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from r1lab.data import fsync
from r1lab.model.config import ModelConfig
from r1lab.model.hf_config import from_hf_config, to_hf_config
from r1lab.model.moe import MoE
from r1lab.model.transformer import Transformer

# ----------------------------------------------------------------------------- weights

_EXPERT_STACK = re.compile(r"(.*\.experts)\.(gate_up_proj|down_proj)$")
_EXPERT_ONE = re.compile(r"(.*\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
_MTP_LOCAL = re.compile(r"mtp\.(\d+)\.(.*)$")
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.*)$")


def _keeps_float32(name: str) -> bool:
    """The router's weight and balancing bias are saved in float32 whatever the dtype, as transformers
    keeps them (`_keep_in_fp32_modules_strict`): in bf16 the bias's gamma = 0.001 updates (V3
    §2.1.2) would round away near 1 (bf16 steps there by 0.008), and routing would change."""
    return name.endswith(".mlp.gate.weight") or name.endswith("e_score_correction_bias")


def _hf_name(name: str, config: ModelConfig) -> str:
    """The checkpoint's name of an r1lab tensor: MTP module k is layer num_hidden_layers + k on disk."""
    m = _MTP_LOCAL.match(name)
    if not m:
        return name
    rest = {"norm.weight": "shared_head.norm.weight"}.get(m.group(2), m.group(2).removeprefix("block."))
    return f"model.layers.{config.num_hidden_layers + int(m.group(1))}.{rest}"


def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    config, out = model.config, {}
    for name, t in model.state_dict().items():
        if config.tie_word_embeddings and name == "lm_head.weight":
            continue  # tied: transformers re-ties it from the embedding
        name = _hf_name(name, config)
        m = _EXPERT_STACK.match(name)
        if m and m.group(2) == "gate_up_proj":
            gates, ups = t.chunk(2, dim=1)  # (E, I, D) each
            for e in range(t.shape[0]):
                out[f"{m.group(1)}.{e}.gate_proj.weight"] = gates[e].contiguous()
                out[f"{m.group(1)}.{e}.up_proj.weight"] = ups[e].contiguous()
        elif m:
            for e in range(t.shape[0]):
                out[f"{m.group(1)}.{e}.down_proj.weight"] = t[e].contiguous()
        else:
            out[name] = t.contiguous()
    if config.n_shared_experts == 0:  # transformers builds a zero-width shared expert in every MoE layer
        for name, module in model.named_modules():  # then: written empty, else it reports them missing
            if isinstance(module, MoE):
                prefix, d = _hf_name(name, config), config.hidden_size
                ref = module.gate.weight
                for proj, shape in (("gate_proj", (0, d)), ("up_proj", (0, d)), ("down_proj", (d, 0))):
                    out[f"{prefix}.shared_experts.{proj}.weight"] = ref.new_empty(shape)
    return out


def from_hf_state_dict(sd: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Maps checkpoint names to r1lab's, stacking per-expert weights; unknown names pass through
    (and are then reported by the strict load)."""
    n, out = config.num_hidden_layers, {}
    experts: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    disk_prefix: dict[str, str] = {}  # r1lab's experts prefix -> the checkpoint's, for error messages
    for name, t in sd.items():
        disk_name = name
        m = _LAYER.match(name)
        if m and int(m.group(1)) >= n:  # an MTP module
            k, rest = int(m.group(1)) - n, m.group(2)
            if rest in ("embed_tokens.weight", "shared_head.head.weight"):
                continue  # copies of the shared embedding / head in the published checkpoint
            if rest == "shared_head.norm.weight":
                name = f"mtp.{k}.norm.weight"
            elif rest.split(".")[0] in ("enorm", "hnorm", "eh_proj"):
                name = f"mtp.{k}.{rest}"
            else:
                name = f"mtp.{k}.block.{rest}"
        if config.n_shared_experts == 0 and ".shared_experts." in name and t.numel() == 0:
            continue  # transformers builds a zero-width shared expert when n_shared_experts is 0
        m = _EXPERT_ONE.match(name)
        if m:
            experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = t
            disk_prefix[m.group(1)] = _EXPERT_ONE.match(disk_name).group(1)
        else:
            out[name] = t
    for prefix, per_expert in experts.items():
        _check_experts(disk_prefix[prefix], per_expert, config)
        ids = range(config.n_routed_experts)
        out[f"{prefix}.gate_up_proj"] = torch.stack(
            [torch.cat([per_expert[e]["gate_proj"], per_expert[e]["up_proj"]], dim=0) for e in ids])
        out[f"{prefix}.down_proj"] = torch.stack([per_expert[e]["down_proj"] for e in ids])
    if config.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _check_experts(prefix: str, per_expert: dict[int, dict[str, torch.Tensor]], config: ModelConfig) -> None:
    """One layer's per-expert tensors are complete and of the config's shapes: else a ValueError naming
    the tensor (stacking them would raise a KeyError or torch's "stack expects each tensor..." instead)."""
    d, i = config.hidden_size, config.moe_intermediate_size
    shapes = {"gate_proj": [i, d], "up_proj": [i, d], "down_proj": [d, i]}
    extra = sorted(e for e in per_expert if e >= config.n_routed_experts)
    if extra:
        raise ValueError(f"unexpected {prefix}.{extra[0]}.* (config: n_routed_experts={config.n_routed_experts})")
    for e in range(config.n_routed_experts):
        for proj, shape in shapes.items():
            t = per_expert.get(e, {}).get(proj)
            if t is None:
                raise ValueError(f"missing {prefix}.{e}.{proj}.weight")
            if list(t.shape) != shape:
                raise ValueError(f"shape of {prefix}.{e}.{proj}.weight {list(t.shape)} (config: {shape})")


# ----------------------------------------------------------------------------- files


def _is_mtp_key(name: str, config: ModelConfig) -> bool:
    m = _LAYER.match(name)
    return bool(m) and int(m.group(1)) >= config.num_hidden_layers


def save_pretrained(model: Transformer, path: str | os.PathLike, *, dtype: torch.dtype | None = None,
                    extra_files: dict[str, str] | None = None) -> Path:
    """Writes config.json + model.safetensors (+ extra text files) atomically: the directory
    appears complete or not at all, so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    dtype = dtype or model.lm_head.weight.dtype
    hf_config = to_hf_config(model.config, dtype)  # first: a config transformers cannot load stops here
    tensors = {k: v.detach().to("cpu", torch.float32 if _keeps_float32(k) else dtype if v.is_floating_point()
                                else v.dtype) for k, v in to_hf_state_dict(model).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mtp = {k: v for k, v in tensors.items() if _is_mtp_key(k, model.config)}
        main = {k: v for k, v in tensors.items() if k not in mtp}
        _save_tensors(main, tmp / "model.safetensors")
        if mtp:  # a file of its own: transformers reads model.safetensors only and stays quiet
            _save_tensors(mtp, tmp / "mtp.safetensors")
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        for file in tmp.iterdir():  # on disk before the rename publishes them (else a power cut can
            fsync(file)  # leave a "complete" checkpoint of empty files)
        fsync(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            try:
                tmp.rename(path)
            except BaseException:
                old.rename(path)  # the new copy did not land: the old checkpoint comes back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync(path.parent)  # the rename itself
    return path


def _save_tensors(tensors: dict[str, torch.Tensor], file: Path) -> None:
    """`save_file`; a failed write (disk full, quota) is the OSError naming the file, as for every
    other file a run writes: safetensors raises its own SafetensorError ("I/O error: No space left
    on device (os error 28)"), which the CLI reports as a traceback."""
    try:
        save_file(tensors, file, metadata={"format": "pt"})
    except SafetensorError as err:
        code = re.search(r"\(os error (\d+)\)", str(err))
        if code is None:  # not the disk's: a tensor it cannot serialize
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(file)) from err


def remove_stale_temporaries(path: Path) -> None:
    """Removes the `.<name>.XXXXXXXX` temporaries (mkdtemp's 8 characters) of `path` that a save
    killed outright (no `except` ran) left behind: each such kill would leave one more. Not
    `.<name>.old`, where a kill mid-swap leaves the only copy of the checkpoint, nor another path's."""
    own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}")
    for stale in path.parent.glob(".*"):
        if own.fullmatch(stale.name) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def load_config(path: str | os.PathLike) -> ModelConfig:
    file = Path(path) / "config.json"
    if not Path(path).is_dir():  # "no config.json in runs/base/base" read as a damaged checkpoint
        raise FileNotFoundError(f"checkpoint not found: {path} is not a directory" if Path(path).exists()
                                else f"checkpoint not found: no directory {path}")
    if not file.exists():
        raise FileNotFoundError(f"no config.json in {path}")
    try:
        hf = json.loads(file.read_text())
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{file}: not readable JSON ({err})") from None
    if not isinstance(hf, dict):  # valid JSON, but not a config (from_hf_config would raise AttributeError)
        raise ValueError(f"{file}: expected a JSON object, got {type(hf).__name__}")
    try:
        return from_hf_config(hf)
    except (TypeError, IndexError) as err:  # a field of the wrong type ("hidden_size": null, "eos_token_id": [])
        raise ValueError(f"{file}: a field has the wrong type or is empty ({err})") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's *.safetensors files (one file, or transformers' shards). A shard
    the index lists but the directory lacks is named (else: "missing" tensors, as if config.json were
    wrong); so is a tensor in two files (a stale model.safetensors beside shards), which one overwrote."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{index}: not a readable safetensors index ({err!r})") from None
        absent = sorted(name for name in shards if not (path / name).is_file())
        if absent:
            raise FileNotFoundError(f"{path / absent[0]}: listed in {index.name}, not in the directory")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {path}")
    if [f.name for f in files] == ["mtp.safetensors"]:  # else: every main tensor "missing", as if config.json were wrong
        raise FileNotFoundError(f"no model.safetensors in {path}: only the MTP weights (mtp.safetensors)")
    sd: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    for f in files:
        try:
            part = load_file(f)
        except Exception as err:  # noqa: BLE001 (SafetensorError: a cut or corrupt file)
            raise ValueError(f"{f}: not a readable safetensors file ({err})") from None
        twice = sorted(part.keys() & sd.keys())
        if twice:
            raise ValueError(f"{twice[0]} is in both {origin[twice[0]]} and {f}: remove the stale file")
        sd.update(part)
        origin.update(dict.fromkeys(part, f))
    return sd


def check_state(state: dict[str, torch.Tensor], shapes: dict[str, torch.Size], what: str,
                name: Callable[[str], str] = str, hint: str = "") -> None:
    """ValueError "`what` does not match its config" if `state` lacks a tensor of `shapes` (what the
    config builds), has another, or one of another size (one line naming the tensors as `name`
    gives them, not load_state_dict's RuntimeError); `hint` is added when a tensor is missing."""
    missing = sorted(name(k) for k in set(shapes) - set(state))
    unexpected = sorted(name(k) for k in set(state) - set(shapes))
    if missing or unexpected:
        raise ValueError(f"{what} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
                         f"{hint if missing else ''}")
    wrong = [f"{name(k)} {list(state[k].shape)} (config: {list(shapes[k])})" for k in sorted(state)
             if state[k].shape != shapes[k]]
    if wrong:
        raise ValueError(f"{what} does not match its config: shapes of {', '.join(wrong[:3])}")


def from_pretrained(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> Transformer:
    """Loads a deepseek_v3 checkpoint (r1lab's or transformers') into an r1lab Transformer."""
    path = Path(path)
    config = load_config(path)
    sd = read_weights(path)
    if config.num_nextn_predict_layers and not any(_is_mtp_key(k, config) for k in sd):
        # transformers has no MTP: its checkpoints keep num_nextn_predict_layers but no weights
        config = config.replace(num_nextn_predict_layers=0)
    with torch.device("meta"):
        model = Transformer(config)
    try:
        state = from_hf_state_dict(sd, config)
    except ValueError as err:  # a per-expert tensor missing, extra or mis-shaped
        raise ValueError(f"checkpoint {path} does not match its config: {err}") from None
    shapes = {k: v.shape for k, v in model.state_dict().items()}  # what the config builds (meta tensors)
    if config.tie_word_embeddings:
        del shapes["lm_head.weight"]
    # named as in the checkpoint's files (an MTP module's `mtp.0.*` is `model.layers.{n}.*` there)
    check_state(state, shapes, f"checkpoint {path}", lambda k: _hf_name(k, config))
    # the router stays float32 in any dtype, as transformers loads it (see _keeps_float32)
    state = {k: v.to(torch.float32 if _keeps_float32(k) else dtype) if v.is_floating_point() else v
             for k, v in state.items()}
    model.load_state_dict(state, assign=True, strict=not config.tie_word_embeddings)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.rotary = type(model.rotary)(config)  # buffers are not in the checkpoint: rebuild off meta
    for moe in model.moe_layers():
        moe.gate.expert_load = torch.zeros(config.n_routed_experts)
    return model.to(device)
