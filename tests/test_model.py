"""MATR model and its configuration: shapes, masks, ablation switches, decoder span, determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch

from matr.align import COSTS, HardAlignment, contrastive_cost, hard_alignment
from matr.config import ALIGN_COSTS, LossConfig, MATRConfig, ModelConfig, override, preset
from matr.model import MATR, Attention, sinusoidal_positions, span_memory_mask

D = 64  # hidden size of the smoke preset


def _model(seed: int = 0, **updates) -> MATR:
    torch.manual_seed(seed)
    return MATR(override(preset("smoke"), {f"model.{k}": v for k, v in updates.items()}))


def _pad(batch: dict, extra_m: int, extra_n: int, seed: int = 7) -> dict:
    """The same pairs with ``extra_m`` / ``extra_n`` more padded frames holding random garbage."""
    gen = torch.Generator().manual_seed(seed)
    b = batch["target"].shape[0]
    out = dict(batch)
    for key, extra in (("target", extra_m), ("query", extra_n)):
        out[key] = torch.cat([batch[key], 50 * torch.randn(b, extra, 512, generator=gen)], dim=1)
        out[f"{key}_mask"] = torch.cat([batch[f"{key}_mask"], torch.zeros(b, extra, dtype=torch.bool)], dim=1)
    out["foreground"] = torch.cat([batch["foreground"], torch.zeros(b, extra_m)], dim=1)
    out["offsets"] = torch.cat([batch["offsets"], torch.zeros(b, extra_m, 2)], dim=1)
    return out


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["paper", "demo", "smoke"])
def test_config_round_trips_through_json(name: str) -> None:
    config = preset(name)
    assert MATRConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_paper_preset_matches_section_5_2() -> None:
    model, loss = preset("paper").model, preset("paper").loss
    assert (model.hidden_dim, model.encoder_layers, model.decoder_layers, model.num_queries) == (1024, 4, 4, 10)
    assert (model.transformer_dropout, model.projection_dropout) == (0.1, 0.5)
    assert loss == LossConfig(fg=1, l1=1, giou=1, align_pre=1, align_post=1)


@pytest.mark.parametrize(
    "data, field",
    [({"model": {"hiden_dim": 8}}, "hiden_dim"), ({"optim": {}}, "optim"), ({"loss": {"bce": 1.0}}, "bce")],
)
def test_unknown_config_keys_are_rejected_by_name(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MATRConfig.from_dict(data)


@pytest.mark.parametrize(
    "updates, field",
    [
        ({"model.align_method": "dtw"}, "align_method"),
        ({"model.align_cost": "l2"}, "align_cost"),
        ({"model.align_temperature": 0.0}, "align_temperature"),
        ({"model.fusion": "sum"}, "fusion"),
        ({"model.num_heads": 5}, "num_heads"),
        ({"loss.fg": -1.0}, "fg"),
    ],
)
def test_invalid_config_values_name_the_field(updates: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        override(preset("smoke"), updates)


def test_config_cost_names_are_the_align_package_costs() -> None:
    assert ALIGN_COSTS == COSTS


def test_override_changes_only_the_named_field() -> None:
    config = override(preset("smoke"), {"model.use_decoder": False})
    assert not config.model.use_decoder
    assert config.loss == preset("smoke").loss and config.model.hidden_dim == D
    with pytest.raises(ValueError, match="model.nope"):
        override(config, {"model.nope": 1})


# --- shapes, masks, init ---------------------------------------------------------------------


def test_forward_shapes_in_training_and_eval(planted_batch) -> None:
    batch, model = planted_batch(num_pairs=3), _model()
    b, m, n = batch["target"].shape[0], batch["target"].shape[1], batch["query"].shape[1]
    out = model(batch)
    assert out["fg_logits"].shape == (b, m) and out["offsets"].shape == (b, m, 2)
    assert out["align_pre"].shape == (b,) and out["align_post"].shape == (b,)
    assert out["A_pre"] is None, "A^pre is a DP: only computed in eval mode"
    assert out["A_post"].matrix.shape == (b, m, n)
    model.eval()
    out = model(batch)
    assert isinstance(out["A_pre"], HardAlignment) and out["A_pre"].start.shape == (b,)
    assert bool((out["offsets"] >= 0).all())


def test_extra_padding_does_not_change_real_frames(planted_batch) -> None:
    batch, model = planted_batch(num_pairs=3, seed=3), _model().eval()
    padded = _pad(batch, extra_m=9, extra_n=5)
    with torch.no_grad():
        out, out_padded = model(batch), model(padded)
    m, mask = batch["target"].shape[1], batch["target_mask"]
    torch.testing.assert_close(out_padded["fg_logits"][:, :m][mask], out["fg_logits"][mask], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_padded["offsets"][:, :m][mask], out["offsets"][mask], atol=1e-5, rtol=1e-4)
    for key in ("align_pre", "align_post"):
        torch.testing.assert_close(out_padded[key], out[key], atol=1e-5, rtol=1e-4)
    for key in ("A_pre", "A_post"):
        assert torch.equal(out_padded[key].start, out[key].start) and torch.equal(out_padded[key].end, out[key].end)


def test_garbage_in_padded_frames_is_ignored(planted_batch) -> None:
    batch, model = planted_batch(num_pairs=3, seed=4), _model().eval()
    noisy = dict(
        batch,
        target=batch["target"].masked_fill(~batch["target_mask"].unsqueeze(-1), 1e3),
        query=batch["query"].masked_fill(~batch["query_mask"].unsqueeze(-1), -1e3),
    )
    with torch.no_grad():
        out, out_noisy = model(batch), model(noisy)
    mask = batch["target_mask"]
    torch.testing.assert_close(out_noisy["fg_logits"][mask], out["fg_logits"][mask], atol=1e-5, rtol=1e-4)


def test_weights_use_xavier_uniform_init() -> None:
    weight = _model().projection.net[0].weight  # Linear 512 -> 64
    bound = math.sqrt(6.0 / (512 + D))
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.9 * bound, "PyTorch's default bound is 1/sqrt(512), well below Xavier's"


def test_too_long_target_is_rejected(planted_batch) -> None:
    batch = _pad(planted_batch(num_pairs=1), extra_m=300, extra_n=0)
    with pytest.raises(ValueError, match="max_target_frames"):
        _model()(batch)


def test_sinusoidal_positions_start_with_sin0_cos0() -> None:
    table = sinusoidal_positions(5, 8)
    assert table.shape == (5, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 4))
    assert not torch.allclose(table[1], table[2])


# --- ablation switches -----------------------------------------------------------------------


def test_pre_fusion_alignment_switch(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    out = _model(align_pre=False)(batch)
    assert out["align_pre"] is None and out["align_post"] is not None


def test_post_fusion_alignment_switch(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    out = _model(align_post=False)(batch)
    assert out["align_post"] is None and out["align_pre"] is not None
    assert out["A_post"] is not None, "the decoder still needs the span [s:e]"


def test_method_none_drops_both_losses_but_keeps_the_decoder_span(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    out = _model(align_method="none")(batch)
    assert out["align_pre"] is None and out["align_post"] is None and out["A_post"] is not None


def test_alignment_loss_off_leaves_the_forward_pass_unchanged(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    on, off = _model().eval(), _model(align_method="none").eval()
    with torch.no_grad():
        torch.testing.assert_close(on(batch)["fg_logits"], off(batch)["fg_logits"])


@pytest.mark.parametrize("method", ["soft_dtw", "drop_dtw", "tcc"])
def test_each_alignment_method_gives_differentiable_per_pair_losses(planted_batch, method: str) -> None:
    batch, model = planted_batch(num_pairs=2), _model(align_method=method)
    out = model(batch)
    assert out["align_pre"].shape == out["align_post"].shape == (2,)
    assert bool(torch.isfinite(out["align_pre"]).all() and torch.isfinite(out["align_post"]).all())
    (out["align_pre"].sum() + out["align_post"].sum()).backward()
    assert model.projection.net[0].weight.grad.abs().sum() > 0


def test_align_cost_switch_changes_the_losses_and_the_hard_alignment_cost(planted_batch) -> None:
    batch = planted_batch(num_pairs=3, seed=2)
    cosine, contrastive = _model().eval(), _model(align_cost="contrastive", align_temperature=0.2).eval()
    with torch.no_grad():
        out_cos, out_con = cosine(batch), contrastive(batch)
        et = contrastive.projection(batch["target"])
        expected = hard_alignment(
            contrastive_cost(et, contrastive.projection(batch["query"]), batch["target_lengths"], 0.2),
            batch["target_lengths"],
            batch["query_lengths"],
        )
    for name in ("align_pre", "align_post"):
        assert not torch.allclose(out_cos[name], out_con[name])
    assert torch.equal(out_con["A_pre"].matrix, expected.matrix)


def test_decoder_off_feeds_encoder_features_only(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    with_decoder, without = _model(), _model(use_decoder=False)
    assert with_decoder.fg_head.convs[0].in_channels == 2 * D
    assert without.fg_head.convs[0].in_channels == D
    assert not hasattr(without, "decoder")
    out = without(batch)
    assert out["A_post"] is None, "no decoder: no hard alignment needed in training"
    assert out["fg_logits"].shape == batch["foreground"].shape
    assert without.eval()(batch)["A_post"] is not None, "eval mode computes A_post for Table 4"


def test_pool_fusion_broadcasts_one_vector_and_attend_fusion_varies_per_frame() -> None:
    torch.manual_seed(0)
    etg, etl, pos = torch.randn(2, 7, D), torch.randn(2, 4, D), sinusoidal_positions(7, D)
    pooled = _model(fusion="pool").eval().fuse(etg, etl, pos)
    attended = _model(fusion="attend").eval().fuse(etg, etl, pos)
    assert pooled.shape == attended.shape == (2, 7, 2 * D)
    torch.testing.assert_close(pooled[:, :, D:], etl.mean(1, keepdim=True).expand(2, 7, D))
    assert not torch.allclose(attended[:, 0, D:], attended[:, 1, D:])
    torch.testing.assert_close(attended[:, :, :D], etg)


# --- decoder span ----------------------------------------------------------------------------


def test_span_memory_mask_hides_outside_span_and_padding() -> None:
    target_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    mask = span_memory_mask(torch.tensor([1, 2]), torch.tensor([3, 5]), target_mask)
    expected = torch.tensor([[1, 0, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_decoder_sees_only_the_aligned_span() -> None:
    model = _model().eval()
    torch.manual_seed(1)
    etg, pos = torch.randn(2, 10, D), sinusoidal_positions(10, D)
    mask = span_memory_mask(torch.tensor([2, 5]), torch.tensor([4, 8]), torch.ones(2, 10, dtype=torch.bool))
    with torch.no_grad():
        reference = model.decode(etg, pos, mask)
        outside = etg.clone()
        outside[:, [0, 1, 9]] += 5 * torch.randn(2, 3, D)
        torch.testing.assert_close(model.decode(outside, pos, mask), reference)
        inside = etg.clone()
        inside[:, 5] += 5 * torch.randn(2, D)
        assert not torch.allclose(model.decode(inside, pos, mask), reference, atol=1e-4)


def test_forward_restricts_the_decoder_to_the_a_post_span(planted_batch) -> None:
    batch, model = planted_batch(num_pairs=3, seed=5), _model().eval()
    seen = {}

    def record_mask(module, args) -> None:
        seen["mask"] = args[4]

    model.decoder[0].register_forward_pre_hook(record_mask)
    with torch.no_grad():
        a_post = model(batch)["A_post"]
    assert torch.equal(seen["mask"], span_memory_mask(a_post.start, a_post.end, batch["target_mask"]))
    assert bool((~seen["mask"]).sum(1).lt(batch["target_lengths"]).any()), "span should be a strict sub-sequence"


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_same_output(planted_batch) -> None:
    batch = planted_batch(num_pairs=2)
    first, second, other = _model(seed=3).eval(), _model(seed=3).eval(), _model(seed=4).eval()
    with torch.no_grad():
        torch.testing.assert_close(first(batch)["offsets"], second(batch)["offsets"], atol=0, rtol=0)
        assert not torch.allclose(first(batch)["offsets"], other(batch)["offsets"])


def test_model_accepts_model_config_or_full_config() -> None:
    assert (
        MATR(ModelConfig(hidden_dim=32, num_heads=4, ffn_dim=32, encoder_layers=1, decoder_layers=1)).config.hidden_dim
        == 32
    )
    assert MATR(preset("smoke")).config == preset("smoke").model


# --- attention through SDPA, inference without the alignment losses --------------------------


def test_attention_equals_multihead_attention_with_the_same_weights() -> None:
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(D, 4, batch_first=True).eval()
    attention = Attention(D, 4, dropout=0.0).eval()
    attention.load_state_dict(reference.state_dict())  # same parameter names: checkpoints load unchanged
    query, key = torch.randn(3, 7, D), torch.randn(3, 11, D)
    padding = torch.zeros(3, 11, dtype=torch.bool)
    padding[1, 6:] = True
    expected = reference(query, key, key, key_padding_mask=padding, need_weights=False)[0]
    torch.testing.assert_close(attention(query, key, key, padding), expected, atol=1e-5, rtol=1e-4)


def test_heads_only_skips_the_losses_and_a_pre_but_not_the_heads(planted_batch) -> None:
    batch, model = planted_batch(num_pairs=3, seed=5), _model().eval()
    with torch.no_grad():
        full, heads = model(batch), model(batch, heads_only=True)
    assert heads["align_pre"] is None and heads["align_post"] is None and heads["A_pre"] is None
    assert heads["A_post"] is not None, "the decoder still needs its span"
    assert torch.equal(heads["fg_logits"], full["fg_logits"]) and torch.equal(heads["offsets"], full["offsets"])
