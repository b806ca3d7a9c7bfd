"""Hugging Face interop: r1lab <-> transformers' DeepseekV3ForCausalLM, logits equal both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM

from r1lab.model import Transformer, from_pretrained, preset, save_pretrained
from r1lab.model.hf_config import from_hf_config, to_hf_config
from r1lab.model.info import count_parameters

CONFIGS = {
    "full-rank-q+moe+groups": dict(q_lora_rank=0, n_group=4, topk_group=2),
    "low-rank-q+moe": dict(q_lora_rank=16, n_group=1, topk_group=1),
    "dense-only": dict(n_routed_experts=0, q_lora_rank=8),
    "yarn+tied+no-interleave": dict(rope_factor=4.0, original_max_position_embeddings=16, mscale=0.9,
                                    mscale_all_dim=0.8, tie_word_embeddings=True, rope_interleave=False),
    "two-dense-then-moe+2-mtp": dict(first_k_dense_replace=2, num_nextn_predict_layers=2, n_group=2, topk_group=1),
    # mscale_all_dim 0: transformers' amplitude is then mscale(factor, 1), whatever mscale says
    "yarn-mscale-all-dim-0": dict(rope_factor=4.0, original_max_position_embeddings=16, mscale=0.707,
                                  mscale_all_dim=0.0),
    "yarn-attention-factor": dict(rope_factor=4.0, original_max_position_embeddings=16, attention_factor=0.8),
    "low-rank-q+yarn+interleave": dict(q_lora_rank=16, rope_factor=8.0, original_max_position_embeddings=8,
                                       mscale=0.7, mscale_all_dim=1.3),
    # odd nope and latent widths: the RoPE parts of q and [c_KV ; k_rope] start at odd offsets
    "odd-nope+odd-latent": dict(q_lora_rank=0, qk_nope_head_dim=7, kv_lora_rank=15),
    # raw gate weights (no renormalisation), scaled, one group of four allowed
    "no-norm-topk+scaling+1-of-4-groups": dict(norm_topk_prob=False, routed_scaling_factor=1.7, n_group=4,
                                               topk_group=1),
    # shared experts' width is moe_intermediate_size * n_shared_experts (V2-Lite has 2)
    "two-shared-experts+3-of-4-groups": dict(n_shared_experts=2, n_group=4, topk_group=3, num_experts_per_tok=3),
    # a cos/sin amplitude without context extension is still YaRN in config.json (rope_factor 1)
    "attention-factor-without-extension": dict(attention_factor=0.8),
}


def make_config(**changes):
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                num_hidden_layers=3, num_attention_heads=4, kv_lora_rank=16, qk_nope_head_dim=8,
                qk_rope_head_dim=4, v_head_dim=6, n_routed_experts=8, num_experts_per_tok=2,
                first_k_dense_replace=1, routed_scaling_factor=2.5, max_position_embeddings=64,
                rope_factor=1.0)
    base.update(changes)
    return preset("tiny").replace(**base)


def randomize_bias(model: torch.nn.Module) -> None:
    for name, buf in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            buf.copy_(torch.randn_like(buf) * 0.05)


@torch.no_grad()
def sharpen_attention(model: torch.nn.Module) -> None:
    """Queries and key/value up-projections x4: at init attention is nearly uniform, and parity
    would then not notice a wrong softmax scale or RoPE amplitude."""
    for name, p in model.named_parameters():
        if name.endswith(("q_proj.weight", "q_b_proj.weight", "kv_b_proj.weight")):
            p.mul_(4.0)


PARITY_ATOL = 1e-5  # observed <= 2e-7 in float32; a 5 % error in the softmax scale gives ~1e-3


@pytest.mark.parametrize("name", CONFIGS)
def test_r1lab_checkpoint_loads_in_transformers(name, tmp_path):
    model = Transformer(make_config(**CONFIGS[name])).eval()
    randomize_bias(model)
    sharpen_attention(model)
    save_pretrained(model, tmp_path / "ck")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ck").eval()
    assert type(hf).__name__ == "DeepseekV3ForCausalLM"
    x = torch.randint(0, 96, (2, 24))
    with torch.no_grad():
        diff = (model(x) - hf(x).logits).abs().max().item()
    assert diff <= PARITY_ATOL


def test_the_student_preset_is_dense_and_loads_in_transformers(tmp_path):
    """Distillation's student (R1 §2.4 distils into dense models): no expert, no MTP module, and an
    ordinary transformers checkpoint with the same logits."""
    config = preset("student")
    model = Transformer(config).eval()
    assert not any("expert" in name or "mtp" in name for name, _ in model.named_parameters())
    assert count_parameters(config) == {"total": sum(p.numel() for p in model.parameters()),
                                        "active": sum(p.numel() for p in model.parameters()), "mtp": 0}
    save_pretrained(model, tmp_path / "ck")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ck").eval()
    x = torch.randint(0, config.vocab_size, (2, 24))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= PARITY_ATOL


@pytest.mark.parametrize("name", CONFIGS)
def test_transformers_checkpoint_loads_in_r1lab(name, tmp_path):
    hf_config = DeepseekV3Config(**{k: v for k, v in to_hf_config(make_config(**CONFIGS[name])).items()
                                    if k not in ("architectures", "model_type", "r1lab", "dtype")})
    hf = DeepseekV3ForCausalLM(hf_config).eval()
    with torch.no_grad():
        randomize_bias(hf)
        sharpen_attention(hf)
        assert any(b.abs().sum() > 0 for n, b in hf.named_buffers() if "e_score" in n) or not CONFIGS[name].get(
            "n_routed_experts", 8)
    hf.save_pretrained(tmp_path / "hf")
    model = from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 96, (2, 24))
    with torch.no_grad():
        diff = (model(x) - hf(x).logits).abs().max().item()
    assert diff <= PARITY_ATOL


def test_left_padded_batch_and_bf16_load_match_transformers(tmp_path):
    """transformers' attention mask (0 = pad) and explicit position ids mean the same here, on the real
    tokens; a bf16 load of the same checkpoint stays within bf16 rounding of transformers' bf16 load."""
    torch.manual_seed(0)
    model = Transformer(make_config(q_lora_rank=16, rope_factor=8.0, original_max_position_embeddings=8)).eval()
    randomize_bias(model)
    sharpen_attention(model)
    save_pretrained(model, tmp_path / "ck")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ck").eval()
    x = torch.randint(0, 96, (2, 24))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[0, :5] = 0  # row 0 left-padded by 5
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    real = mask.bool()
    with torch.no_grad():
        ours = model(x, attention_mask=real, position_ids=pos)
        theirs = hf(x, attention_mask=mask, position_ids=pos).logits
        assert (ours - theirs)[real].abs().max().item() <= PARITY_ATOL
        ours16 = from_pretrained(tmp_path / "ck", dtype=torch.bfloat16).eval()(x).float()
        hf16 = AutoModelForCausalLM.from_pretrained(tmp_path / "ck", dtype=torch.bfloat16).eval()
        assert ours16.dtype == torch.float32 and (ours16 - hf16(x).logits.float()).abs().max().item() < 0.02


def test_roundtrip_is_exact_including_mtp_and_bias(tmp_path):
    model = Transformer(make_config(num_nextn_predict_layers=2)).eval()
    randomize_bias(model)
    save_pretrained(model, tmp_path / "ck")
    again = from_pretrained(tmp_path / "ck")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["model_type"] == "deepseek_v3"


def test_save_replaces_existing_checkpoint_atomically(tmp_path, monkeypatch):
    first, second = Transformer(make_config()), Transformer(make_config())
    save_pretrained(first, tmp_path / "ck")
    save_pretrained(second, tmp_path / "ck")
    loaded = from_pretrained(tmp_path / "ck")
    assert torch.equal(loaded.lm_head.weight, second.lm_head.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary directories left
    # a save that fails while swapping in the new copy leaves the old checkpoint, loadable, in place
    real_rename = Path.rename

    def failing_rename(self, target):
        if Path(target).name == "ck" and self.name != ".ck.old":
            raise OSError("disk gone")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk gone"):
        save_pretrained(first, tmp_path / "ck")
    monkeypatch.undo()
    assert torch.equal(from_pretrained(tmp_path / "ck").lm_head.weight, second.lm_head.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


@pytest.mark.parametrize("field,value,match", [
    ("model_type", "llama", "model_type"),
    ("hidden_act", "gelu", "hidden_act"),
    ("topk_method", "greedy", "topk_method"),
    # transformers would route such a checkpoint with sigmoid: r1lab must not follow softmax silently
    ("scoring_func", "softmax", "scoring_func"),
    ("num_key_value_heads", 1, "num_key_value_heads"),
    ("rope_parameters", {"rope_type": "linear", "factor": 2.0}, "rope_type"),
    ("rope_parameters", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                         "truncate": False}, "truncate"),
    ("rope_parameters", {"rope_type": "yarn", "original_max_position_embeddings": 16}, "factor"),
    ("rope_parameters", {"rope_type": "yarn", "factor": 4.0, "partial_rotary_factor": 0.5}, "partial_rotary_factor"),
    ("rope_parameters", {"rope_type": "yarn", "factor": 4.0, "low_freq_factor": 1.0}, "low_freq_factor"),
])
def test_unsupported_checkpoint_is_a_one_line_error_naming_the_field(tmp_path, field, value, match):
    save_pretrained(Transformer(make_config()), tmp_path / "ck")
    cfg_file = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg[field] = value
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=match) as err:
        from_pretrained(tmp_path / "ck")
    assert "\n" not in str(err.value)


def test_weights_that_do_not_match_the_config_are_an_error(tmp_path):
    save_pretrained(Transformer(make_config()), tmp_path / "ck")
    cfg_file = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["num_hidden_layers"] = 4
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing"):
        from_pretrained(tmp_path / "ck")


def test_a_size_changed_in_config_json_is_a_one_line_error_naming_the_tensor(tmp_path):
    """The names match but the shapes do not: load_state_dict's multi-line RuntimeError (a traceback
    from the CLI, which reports ValueErrors in one line) before."""
    save_pretrained(Transformer(make_config()), tmp_path / "ck")
    cfg_file = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["vocab_size"] = 80
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"shapes of lm_head\.weight \[96, 32\] \(config: \[80, 32\]\)") as err:
        from_pretrained(tmp_path / "ck")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("rope", [
    dict(mscale=1.0, mscale_all_dim=1.0),  # V3
    dict(mscale=0.707, mscale_all_dim=0.0),
    dict(mscale=0.707),  # mscale_all_dim absent
    dict(mscale_all_dim=1.0),  # mscale absent
    dict(mscale=1.0, mscale_all_dim=0.8, attention_factor=1.3),
    dict(beta_fast=None, beta_slow=None),  # absent: transformers' 32 and 1
])
def test_yarn_frequencies_amplitude_and_scale_match_transformers(rope):
    """r1lab reads a YaRN config.json as transformers' `_compute_yarn_parameters` and
    `yarn_apply_mscale` do (V3: factor 40 over an original 4096 context)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import yarn_apply_mscale

    from r1lab.model.hf_config import from_hf_config
    from r1lab.model.rope import rope_frequencies

    d = to_hf_config(preset("deepseek-v3-671b").replace(num_hidden_layers=1, rope_factor=1.0))
    params = dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32, beta_slow=1,
                  original_max_position_embeddings=4096) | rope
    d["rope_parameters"] = {k: v for k, v in params.items() if v is not None}
    hf = DeepseekV3Config(**{k: v for k, v in d.items() if k not in ("architectures", "model_type", "r1lab", "dtype")})
    hf_inv_freq, hf_amplitude = ROPE_INIT_FUNCTIONS["yarn"](hf)
    config = from_hf_config(d)
    inv_freq, amplitude = rope_frequencies(config)
    assert amplitude == pytest.approx(hf_amplitude, rel=1e-12)
    torch.testing.assert_close(inv_freq, hf_inv_freq, rtol=1e-6, atol=0)
    assert config.softmax_scale == pytest.approx(yarn_apply_mscale(hf.rope_parameters, config.qk_head_dim ** -0.5))


def test_softmax_gating_cannot_be_saved_for_transformers(tmp_path):
    """transformers' DeepseekV3 routes with sigmoid only: a softmax-gated model would load as another."""
    model = Transformer(make_config(scoring_func="softmax"))
    with pytest.raises(ValueError, match="sigmoid"):
        save_pretrained(model, tmp_path / "ck")
    assert list(tmp_path.iterdir()) == []


def test_missing_fields_mean_transformers_defaults():
    """A config.json without a field means DeepseekV3Config's default (the published V3 model): a
    routing field dropped from a small config, and a config of nothing but model_type, read as
    transformers reads them (n_routed_experts 256 and first_k_dense_replace 3, not 0)."""
    from r1lab.model.hf_config import _HF_DEFAULTS, from_hf_config

    defaults = DeepseekV3Config()
    assert {k: getattr(defaults, k) for k in _HF_DEFAULTS} == _HF_DEFAULTS
    d = to_hf_config(make_config(n_routed_experts=16))
    for key in ("routed_scaling_factor", "n_group", "topk_group", "num_experts_per_tok"):
        del d[key]
    hf = DeepseekV3Config(**{k: v for k, v in d.items() if k not in ("architectures", "model_type", "r1lab", "dtype")})
    config = from_hf_config(d)
    for key in ("routed_scaling_factor", "n_group", "topk_group", "num_experts_per_tok"):
        assert getattr(config, key) == getattr(hf, key), key
    bare = from_hf_config({"model_type": "deepseek_v3"})
    for key in _HF_DEFAULTS:
        assert getattr(bare, key) == getattr(defaults, key), key

def test_bf16_save_keeps_the_router_exact(tmp_path):
    model = Transformer(make_config()).eval()
    bias = torch.tensor([1.0 + 0.001 * i for i in range(8)])  # V3 gamma = 0.001 steps
    for n, b in model.named_buffers():
        if n.endswith("e_score_correction_bias"):
            b.copy_(bias)
    save_pretrained(model, tmp_path / "ck", dtype=torch.bfloat16)
    sd = load_file(tmp_path / "ck" / "model.safetensors")
    assert torch.equal(sd["model.layers.1.mlp.gate.e_score_correction_bias"], bias)
    assert torch.equal(from_pretrained(tmp_path / "ck").model.layers[1].mlp.gate.e_score_correction_bias, bias)
    gate = model.model.layers[1].mlp.gate.weight
    assert sd["model.layers.1.mlp.gate.weight"].dtype == torch.float32  # the router too, as transformers keeps it
    assert torch.equal(sd["model.layers.1.mlp.gate.weight"], gate.detach())
    assert sd["model.layers.1.mlp.shared_experts.up_proj.weight"].dtype == torch.bfloat16


def test_bf16_load_keeps_the_router_float32_as_transformers(tmp_path):
    """from_pretrained(dtype=bf16) rounded the router's weight to bf16 (transformers keeps it float32:
    `_keep_in_fp32_modules_strict`), so routing changed; a packed decode step over many rows (the
    model's own MoE) then still has to run on the bf16 experts."""
    from r1lab.model.decode import DecodeWeights

    torch.manual_seed(0)
    model = Transformer(make_config(n_routed_experts=64, n_group=1, topk_group=1, num_nextn_predict_layers=1))
    save_pretrained(model, tmp_path / "ck")
    loaded = from_pretrained(tmp_path / "ck", dtype=torch.bfloat16).eval()
    for a, b in zip(model.moe_layers(), loaded.moe_layers()):  # the MTP block's router too
        assert b.gate.weight.dtype == torch.float32 and torch.equal(a.gate.weight, b.gate.weight)
        assert b.experts.gate_up_proj.dtype == torch.bfloat16
    ids = torch.randint(0, 96, (24, 6))  # 24 rows x 64 experts: past the dense decode budget
    with torch.no_grad():
        full = loaded(ids)
        cache = loaded.make_cache(24, 6)
        loaded(ids[:, :5], cache=cache)
        step = DecodeWeights(loaded).step(ids[:, 5], torch.full((24,), 5), torch.ones(24, 6, dtype=torch.bool), cache)
    assert (step - full[:, 5].float()).abs().mean() < 0.01  # bf16 rounding (observed 5e-4)


def test_mtp_block_stays_dense_when_first_k_dense_exceeds_layers(tmp_path):
    cfg = make_config(num_hidden_layers=2, first_k_dense_replace=5, num_nextn_predict_layers=1)
    model = Transformer(cfg)
    save_pretrained(model, tmp_path / "ck")
    again = from_pretrained(tmp_path / "ck")
    assert again.config.is_moe_layer(2) == cfg.is_moe_layer(2) is False


def test_rope_scaling_wins_over_rope_parameters_as_in_transformers():
    d = to_hf_config(make_config())
    d["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    d["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
    assert from_hf_config(d).rope_factor == 4.0


def test_transformers_checkpoint_without_shared_experts_loads(tmp_path):
    cfg = make_config(n_shared_experts=0)
    hf = DeepseekV3ForCausalLM(DeepseekV3Config(**{k: v for k, v in to_hf_config(cfg).items()
                                                   if k not in ("architectures", "model_type", "r1lab", "dtype")})).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= 1e-5


def test_a_checkpoint_without_shared_experts_loads_in_transformers_with_no_missing_keys(tmp_path):
    """transformers builds zero-width shared experts when n_shared_experts is 0: they are written
    (empty), else it reports them missing and "newly initialized"; and the checkpoint reloads here."""
    model = Transformer(make_config(n_shared_experts=0, num_nextn_predict_layers=1)).eval()
    randomize_bias(model)
    save_pretrained(model, tmp_path / "ck")
    hf, info = AutoModelForCausalLM.from_pretrained(tmp_path / "ck", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = torch.randint(0, 96, (2, 12))
    again = from_pretrained(tmp_path / "ck").eval()
    with torch.no_grad():
        assert (model(x) - hf.eval()(x).logits).abs().max().item() <= PARITY_ATOL
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("field,value", [("n_routed_experts", -4), ("n_shared_experts", -1), ("rope_theta", 0.0),
                                         ("original_max_position_embeddings", 0),
                                         # these crashed building the model / gave NaN logits
                                         ("intermediate_size", -4), ("rms_norm_eps", -1e-6),
                                         ("beta_fast", -2.0), ("beta_slow", 0.0)])  # math domain / zero division
def test_bad_sizes_are_rejected_by_name(field, value):
    changes = {field: value}
    if field in ("original_max_position_embeddings", "beta_fast", "beta_slow"):  # YaRN's fields
        changes["rope_factor"] = 4.0
    with pytest.raises(ValueError, match=field):
        make_config(**changes)


def test_a_cut_weights_file_or_a_broken_config_is_one_error_naming_the_file(tmp_path):
    """A truncated model.safetensors raised safetensors' own error (a traceback from the CLI); a
    broken config.json named no file."""
    path = save_pretrained(Transformer(preset("tiny").replace(num_hidden_layers=1)), tmp_path / "ck")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        from_pretrained(path)
    (path / "config.json").write_text("{\n")
    with pytest.raises(ValueError, match=r"config\.json: not readable JSON"):
        from_pretrained(path)
    (path / "config.json").write_text("[]\n")  # JSON, but no object: an AttributeError traceback before
    with pytest.raises(ValueError, match=r"config\.json: expected a JSON object, got list"):
        from_pretrained(path)


@pytest.mark.parametrize("field,value", [("hidden_size", None), ("hidden_size", "64"), ("eos_token_id", []),
                                         ("r1lab", None), ("rope_parameters", {"rope_type": "yarn", "factor": "4"})])
def test_a_config_field_of_the_wrong_type_is_one_error_naming_the_file(tmp_path, field, value):
    """A hand-edited config.json with a null, string or empty field raised a TypeError or
    IndexError deep in the config code (a traceback from the CLI), naming neither file nor field."""
    path = save_pretrained(Transformer(preset("tiny").replace(num_hidden_layers=1)), tmp_path / "ck")
    hf = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**hf, field: value}))
    with pytest.raises(ValueError, match=r"config\.json: a field has the wrong type or is empty"):
        from_pretrained(path)


# per-expert tensors on disk: a missing, mis-shaped or extra one is a one-line error naming it
@pytest.mark.parametrize("edit,match", [
    ("drop", r"missing model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight"),
    ("cut", r"shape of model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight \[15, 32\] \(config: \[16, 32\]\)"),
    ("extra", r"unexpected model\.layers\.1\.mlp\.experts\.8\.\*"),
    ("mtp", r"missing model\.layers\.3\.mlp\.experts\.0\.down_proj\.weight"),  # MTP block, named as on disk
])
def test_a_bad_per_expert_tensor_is_one_error_naming_it(tmp_path, edit, match):
    from safetensors.torch import save_file

    path = save_pretrained(Transformer(make_config()), tmp_path / "ck")
    file = path / ("mtp.safetensors" if edit == "mtp" else "model.safetensors")
    sd = load_file(file)
    up = "model.layers.1.mlp.experts.3.up_proj.weight"
    if edit == "drop":
        del sd[up]
    elif edit == "cut":
        sd[up] = sd[up][:-1].clone()
    elif edit == "extra":
        sd[up.replace(".3.", ".8.")] = sd[up].clone()
    else:
        del sd["model.layers.3.mlp.experts.0.down_proj.weight"]
    save_file(sd, file)
    with pytest.raises(ValueError, match=match) as err:
        from_pretrained(path)
    assert "\n" not in str(err.value)


# an MTP module's tensors are named in errors as in the checkpoint's files (layer num_hidden_layers + k)
def test_a_bad_mtp_tensor_is_named_as_on_disk(tmp_path):
    from safetensors.torch import save_file

    path = save_pretrained(Transformer(make_config()), tmp_path / "ck")  # 3 layers: the MTP module is layer 3
    sd = load_file(path / "mtp.safetensors")
    sd["model.layers.3.eh_proj.weight"] = sd["model.layers.3.eh_proj.weight"][:, :-1].clone()
    save_file(sd, path / "mtp.safetensors")
    with pytest.raises(ValueError, match=r"shapes of model\.layers\.3\.eh_proj\.weight \[32, 63\] \(config: \[32, 64\]\)"):
        from_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "num_nextn_predict_layers": 2}))
    with pytest.raises(ValueError, match=r"missing \['model\.layers\.4\.eh_proj\.weight'"):
        from_pretrained(path)


# a single routed expert cannot be scored as a group (transformers takes each group's top-2 affinities)
def test_a_single_routed_expert_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"each expert group needs >= 2 experts.*1 routed experts in 1 group"):
        make_config(n_routed_experts=1, num_experts_per_tok=1, n_group=1, topk_group=1)
    assert make_config(n_routed_experts=2, num_experts_per_tok=1, n_group=1, topk_group=1).n_routed_experts == 2


# transformers' sharded checkpoints (model.safetensors.index.json): loaded, and a missing shard is named
def test_a_sharded_transformers_checkpoint_loads_and_a_missing_shard_is_named(tmp_path):
    torch.manual_seed(0)
    model = Transformer(make_config(num_nextn_predict_layers=0)).eval()
    save_pretrained(model, tmp_path / "ck")
    AutoModelForCausalLM.from_pretrained(tmp_path / "ck").save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("model-*-of-*.safetensors"))
    assert len(shards) > 2 and (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    x = torch.randint(0, 96, (1, 12))
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path / "sharded")(x), model(x))
    shards[1].unlink()
    with pytest.raises(FileNotFoundError, match=rf"{shards[1].name}: listed in model\.safetensors\.index\.json"):
        from_pretrained(tmp_path / "sharded")


# a tensor stored in two weight files (a stale model.safetensors beside shards) is an error naming both
def test_a_tensor_in_two_weight_files_is_an_error_naming_both(tmp_path):
    from safetensors.torch import save_file

    path = save_pretrained(Transformer(preset("tiny").replace(num_hidden_layers=1)), tmp_path / "ck")
    sd = load_file(path / "model.safetensors")
    save_file({"model.norm.weight": sd["model.norm.weight"] * 2}, path / "model-00001-of-00001.safetensors")
    with pytest.raises(ValueError, match=r"model\.norm\.weight is in both .*model-00001-of-00001\.safetensors and "
                                         r".*/model\.safetensors"):
        from_pretrained(path)


# a transformers-built config that leaves num_key_value_heads at DeepseekV3Config's default (128) loads
def test_transformers_default_num_key_value_heads_loads(tmp_path):
    cfg = {k: v for k, v in to_hf_config(make_config()).items()
           if k not in ("architectures", "model_type", "r1lab", "dtype", "num_key_value_heads")}
    hf = DeepseekV3ForCausalLM(DeepseekV3Config(**cfg)).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["num_key_value_heads"] == 128
    model = from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= PARITY_ATOL


# a checkpoint that lost model.safetensors but kept mtp.safetensors names the missing file
def test_a_checkpoint_with_only_its_mtp_weights_names_the_missing_file(tmp_path):
    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=1))
    save_pretrained(model, tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors in .*ck: only the MTP weights"):
        from_pretrained(tmp_path / "ck")


# every field r1lab writes to config.json reads back as written (token ids, init, YaRN's ramp, r1lab's own)
def test_config_round_trips_through_config_json(tmp_path):
    from r1lab.model.checkpoint import load_config

    config = make_config(pad_token_id=3, bos_token_id=2, eos_token_id=5, initializer_range=0.01, rms_norm_eps=1e-5,
                         rope_factor=4.0, original_max_position_embeddings=16, beta_fast=16.0, beta_slow=2.0,
                         mscale=0.9, mscale_all_dim=0.8, mtp_loss_weight=0.1, bias_update_speed=0.002,
                         seq_aux_loss_alpha=1e-4, num_nextn_predict_layers=2)
    save_pretrained(Transformer(config), tmp_path / "ck")
    assert load_config(tmp_path / "ck") == config
    d = to_hf_config(config)
    d["eos_token_id"] = [5, 7]  # transformers allows several; the first is r1lab's
    assert from_hf_config(d).eos_token_id == 5


# the published checkpoint stores copies of the embedding and output head in each MTP layer: skipped
def test_mtp_copies_of_embedding_and_head_are_skipped_on_load(tmp_path):
    from safetensors.torch import save_file

    model = Transformer(make_config()).eval()  # 3 layers: the MTP module is layer 3 on disk
    path = save_pretrained(model, tmp_path / "ck")
    sd = load_file(path / "mtp.safetensors")
    sd["model.layers.3.embed_tokens.weight"] = model.model.embed_tokens.weight.detach().clone()
    sd["model.layers.3.shared_head.head.weight"] = model.lm_head.weight.detach().clone()
    save_file(sd, path / "mtp.safetensors")
    again = from_pretrained(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# config.json may hold a field both at the top level and in rope_parameters: read as transformers reads
# it (original_max_position_embeddings: the top level's; rope_theta: rope_parameters')
def test_fields_given_twice_are_read_as_transformers_reads_them():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from r1lab.model.rope import rope_frequencies

    d = to_hf_config(preset("deepseek-v3-671b").replace(num_hidden_layers=1, rope_factor=1.0))
    d.update(original_max_position_embeddings=1024, rope_theta=5000.0)
    d["rope_parameters"] = dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32, beta_slow=1,
                                mscale=1.0, mscale_all_dim=1.0, original_max_position_embeddings=4096)
    config = from_hf_config(d)  # first: transformers' yarn init writes the top-level value into d's rope dict
    hf = DeepseekV3Config(**{k: v for k, v in d.items() if k not in ("architectures", "model_type", "r1lab", "dtype")})
    hf_inv_freq, _ = ROPE_INIT_FUNCTIONS["yarn"](hf)
    assert (config.original_max_position_embeddings, config.rope_theta) == (1024, 10000.0)
    torch.testing.assert_close(rope_frequencies(config)[0], hf_inv_freq, rtol=1e-6, atol=0)


# a tied checkpoint that also stores lm_head.weight (as some writers do) loads: the head is the embedding
def test_a_tied_checkpoint_with_a_stored_head_loads(tmp_path):
    from safetensors.torch import save_file

    model = Transformer(make_config(tie_word_embeddings=True, num_nextn_predict_layers=0)).eval()
    path = save_pretrained(model, tmp_path / "ck")
    sd = load_file(path / "model.safetensors")
    assert "lm_head.weight" not in sd
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"].clone()
    save_file(sd, path / "model.safetensors")
    again = from_pretrained(path).eval()
    assert again.lm_head.weight is again.model.embed_tokens.weight
    x = torch.randint(0, 96, (1, 8))
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
